"""The pool module interrupted (SIGINT, SIGTERM) and blocked on a held lock, run as Ansible runs it.

The module file runs with its arguments in a JSON file, as ansible-playbook starts it, so that the
test can send it the signal ansible-playbook or AWX would and read the result it prints.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import typing as t
import uuid

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._lock import FileLock, MongoLease
from tests.chaos.processes import POOL_MODULE, python_env
from tests.integration.reconcile.conftest import Ansible, Core, pool_dict
from tests.sandbox.mongo import MongoServer


class ModuleRun:
    """One run of the pool module's file as a process; `finish` returns its printed result and its stderr."""

    def __init__(self, ansible: Ansible, args: dict[str, t.Any]) -> None:
        path = ansible.workdir / f"args-{uuid.uuid4().hex[:8]}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds the token
        with os.fdopen(fd, "w") as handle:
            json.dump({"ANSIBLE_MODULE_ARGS": {"lock_dir": str(ansible.workdir / "locks"), **args}}, handle)
        # The test's environment as ansible-playbook passes it (no MONGODB_URI unless given), the collection importable.
        env = {k: v for k, v in ansible.env().items() if not k.lower().endswith("_proxy")}
        env["PYTHONPATH"] = python_env()["PYTHONPATH"]
        # stderr into a file: what the module says while it runs can be read before it ends.
        self.stderr = path.with_suffix(".stderr")
        with open(self.stderr, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(POOL_MODULE), str(path)], env=env, stdout=subprocess.PIPE, stderr=err, text=True
            )

    def said(self) -> str:
        return self.stderr.read_text()

    def finish(self, timeout: float = 240) -> tuple[dict[str, t.Any], str]:
        out = self.proc.communicate(timeout=timeout)[0]
        assert out.strip(), self.said()
        return json.loads(out), self.said()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_run_leaks_nothing_saves_the_history_and_the_next_run_heals(
    fresh_sandbox_state: t.Any, ansible: Ansible, core: Core, sig: signal.Signals
) -> None:
    sandbox = fresh_sandbox_state
    # Slow creates, one at a time: the signal comes while most of the pool is still to be created.
    sandbox.add_fault(kind="latency", service="nova", method="POST", route="/servers", delay=1.5, count=None)
    pool = pool_dict(sandbox, min_idle=6, max_runners=6, create_concurrency=1)
    args = {"controller_id": "it", "pools": [pool]}
    run = ModuleRun(ansible, args)
    core.wait_for("the first server", lambda: len(core.servers(pool["name"])) >= 1, timeout=180)
    run.proc.send_signal(sig)
    result, err = run.finish()
    sandbox.clear_faults()

    assert result["failed"] is True
    assert result["msg"].startswith(f"stopped by {sig.name}") and f"pool {pool['name']}: created" in result["msg"]
    assert f"{sig.name} received" in err
    report = result["pools"][0]
    assert report["stopped"] == f"stopped by {sig.name}" and report["errors"] == []
    created = report["created"]
    assert created and len(created) + report["left"]["create"] == 6
    # Nothing leaked: every runner GitHub knows has its VM, and every VM its runner.
    servers = {s["name"] for s in core.servers(pool["name"])}
    runners = {r["name"] for r in core.runners(pool["name"])}
    assert servers == runners == set(created)
    # The history was saved with the lock's state, the runners just created in it.
    state = json.loads((ansible.workdir / "locks" / f"it-{pool['name']}.state.json").read_text())
    assert set(created) <= set(state["history"]["first_seen"])

    healed = ansible.run("github_runner_pool", {**args, "wait": True, "wait_timeout": 120}).result
    assert len(healed["pools"][0]["created"]) == 6 - len(created)
    assert healed["idle"] == {pool["name"]: 6}
    ansible.run("github_runner_pool", {**args, "state": "absent", "force": True})


@pytest.mark.parametrize("kind", ["file", pytest.param("mongodb", marks=pytest.mark.mongodb)])
def test_a_run_blocked_on_a_held_lock_names_the_holder_at_once_and_when_it_gives_up(
    sandbox: t.Any, ansible: Ansible, request: pytest.FixtureRequest, kind: str
) -> None:
    pool = pool_dict(sandbox, min_idle=1)
    key = f"it-{pool['name']}"
    args: dict[str, t.Any] = {"controller_id": "it", "pools": [pool], "lock_timeout": 2}
    holder: FileLock | MongoLease
    if kind == "file":
        holder = FileLock(str(ansible.workdir / "locks" / f"{key}.lock"))
    else:
        mongodb: MongoServer = request.getfixturevalue("mongodb")
        database = f"ghr_test_{uuid.uuid4().hex[:8]}"
        args.update(mongodb_uri=mongodb.uri, mongodb_database=database)
        holder = MongoLease(mongodb.uri, database, "locks", key, ttl=120)
    with holder:
        result, err = ModuleRun(ansible, args).finish()
    waiting = f"waiting for the lock of pool {pool['name']} held by pid {os.getpid()} on "
    assert result["failed"] is True and f"pid {os.getpid()}" in result["msg"] and "lock_timeout" in result["msg"]
    assert [w for w in warning_texts(result) if w.startswith(waiting)] != [], result
    assert waiting in err  # written at once, for a run that is cut short before it returns
    assert sandbox_servers(sandbox, pool["name"]) == []


def warning_texts(result: dict[str, t.Any]) -> list[str]:
    """The warnings a module printed: texts, or (ansible-core 2.19) summaries holding them."""
    return [w if isinstance(w, str) else w.get("event", {}).get("msg", "") for w in result.get("warnings", [])]


def sandbox_servers(sandbox: t.Any, pool: str) -> list[str]:
    state = sandbox.control.get("/state")
    return [s["name"] for s in state["openstack"]["servers"] if f"ghr-pool={pool}" in s.get("tags", [])]


def test_a_signal_ends_the_wait_for_a_held_lock_and_changes_nothing(
    sandbox: t.Any, ansible: Ansible, core: Core
) -> None:
    pool = pool_dict(sandbox, min_idle=1)
    args = {"controller_id": "it", "pools": [pool], "lock_timeout": 600}
    with FileLock(str(ansible.workdir / "locks" / f"it-{pool['name']}.lock")):
        run = ModuleRun(ansible, args)
        core.wait_for("the run to wait for the lock", lambda: "waiting for the lock of pool" in run.said(), 180)
        run.proc.send_signal(signal.SIGTERM)
        result = run.finish()[0]
    assert result["failed"] is True
    assert result["msg"] == f"stopped by SIGTERM while waiting for the lock of pool {pool['name']}: nothing was changed"
    assert sandbox_servers(sandbox, pool["name"]) == [] and core.runners(pool["name"]) == []
