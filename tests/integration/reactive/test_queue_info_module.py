"""runner_job_queue_info run by ansible-playbook, as a user runs it, against the test MongoDB server."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import typing as t

import pytest
import yaml

from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.job import JobKey, new_job
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import JobQueue
from tests.integration.reactive.claimers import FakeClock
from tests.sandbox.mongo import MongoServer, free_port

pytestmark = pytest.mark.mongodb
ROOT = pathlib.Path(__file__).resolve().parents[3]
BIN = pathlib.Path(sys.executable).parent


def run_module(
    workdir: pathlib.Path, args: dict[str, t.Any], *, env: dict[str, str] | None = None, check: bool = False
) -> tuple[dict[str, t.Any], str]:
    """One task of the module in a playbook; its registered result and the playbook output."""
    result_file = workdir / "result.json"
    result_file.unlink(missing_ok=True)
    play = [
        {
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
            "tasks": [
                {
                    "name": "module under test",
                    "selfhosted.github_runners.runner_job_queue_info": args,
                    "register": "out",
                    "ignore_errors": True,
                },
                {
                    "name": "save result",
                    "ansible.builtin.copy": {
                        "content": "{{ out | to_json }}",
                        "dest": str(result_file),
                        "mode": "0600",
                    },
                    "check_mode": False,
                },
            ],
        }
    ]
    (workdir / "play.yml").write_text(yaml.safe_dump(play))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MONGODB_"))}
    base.update(
        {
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".venv" / "collections"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCAL_TEMP": str(workdir / "tmp"),
            "ANSIBLE_HOME": str(workdir / "home"),
        }
    )
    cmd = [str(BIN / "ansible-playbook"), str(workdir / "play.yml"), *(["--check"] if check else [])]
    proc = subprocess.run(cmd, env={**base, **(env or {})}, capture_output=True, text=True, timeout=300, check=False)
    output = proc.stdout + proc.stderr
    assert result_file.exists(), output
    return json.loads(result_file.read_text()), output


@pytest.fixture
def filled_queue(make_queue: t.Callable[..., JobQueue]) -> JobQueue:
    clock = FakeClock()
    queue = make_queue("consumer", clock=clock)
    for number, pool in ((1, "small"), (2, "small"), (3, "large"), (4, "large")):
        queue.enqueue(
            new_job(JobKey("api.github.com", "octo/hello", number), pool=pool, labels=[], status="queued", now=clock())
        )
    (lease,) = queue.claim(["large"]).leases
    queue.mark_dead(lease, "job not found (404)")
    return queue


def test_depth_per_pool_and_status_with_the_uri_from_the_environment(
    tmp_path: pathlib.Path, mongodb: MongoServer, database: str, filled_queue: JobQueue
) -> None:
    result, output = run_module(tmp_path, {"mongodb_database": database}, env={"MONGODB_URI": mongodb.uri}, check=True)
    assert not result.get("failed"), output
    assert result["changed"] is False
    assert [(d["pool"], d["status"], d["count"]) for d in result["depth"]] == [
        ("large", "queued", 1),
        ("large", "dead", 1),
        ("small", "queued", 2),
    ]
    assert result["totals"] == {"queued": 3, "dead": 1}
    assert all(
        d["oldest_age"] > 0 and d["oldest_received_at"].startswith("2026-03-01T12:00:00") for d in result["depth"]
    )

    filtered, _output = run_module(
        tmp_path, {"mongodb_uri": mongodb.uri, "mongodb_database": database, "pools": ["large"], "statuses": ["dead"]}
    )
    assert [(d["pool"], d["status"], d["count"]) for d in filtered["depth"]] == [("large", "dead", 1)]


def test_a_queue_that_does_not_exist_yet_is_empty(tmp_path: pathlib.Path, mongodb: MongoServer, database: str) -> None:
    result, output = run_module(tmp_path, {"mongodb_uri": mongodb.uri, "mongodb_database": database})
    assert not result.get("failed"), output
    assert (result["depth"], result["totals"]) == ([], {})


def test_an_unreachable_server_fails_clearly_without_the_password(tmp_path: pathlib.Path) -> None:
    uri = f"mongodb://queue:s3cr3t-pass@127.0.0.1:{free_port()}/"
    result, output = run_module(tmp_path, {"mongodb_uri": uri, "mongodb_timeout": 0.5})
    assert result["failed"] is True
    assert result["msg"].startswith("MongoDB depth of github_runners.jobs: ServerSelectionTimeoutError"), result["msg"]
    assert "s3cr3t-pass" not in output + json.dumps(result)


def test_a_missing_uri_names_the_option(tmp_path: pathlib.Path) -> None:
    result, _output = run_module(tmp_path, {"statuses": ["queued"]})
    assert result["failed"] is True
    assert "mongodb_uri" in result["msg"]
