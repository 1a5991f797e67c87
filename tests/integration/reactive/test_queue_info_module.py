"""runner_job_queue_info run by ansible-playbook, as a user runs it, against the test MongoDB server."""

from __future__ import annotations

import json
import pathlib
import sys
import typing as t

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.job import JobKey, new_job
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import JobQueue
from tests.integration.playbook import ansible_env, run_task
from tests.integration.reactive.claimers import FakeClock
from tests.sandbox.mongo import MongoServer, free_port

pytestmark = pytest.mark.mongodb
ROOT = pathlib.Path(__file__).resolve().parents[3]
BIN = pathlib.Path(sys.executable).parent


def run_module(
    workdir: pathlib.Path, args: dict[str, t.Any], *, env: dict[str, str] | None = None, check: bool = False
) -> tuple[dict[str, t.Any], str]:
    """One task of the module in a playbook; its registered result and the playbook output."""
    base = ansible_env(workdir, drop=("ANSIBLE_", "MONGODB_"))
    result, output, _returncode = run_task(workdir, "runner_job_queue_info", args, {**base, **(env or {})}, check=check)
    return result, output


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
