"""Drift and size guards against the sandbox: a changed pool rolls its idle runners over; huge sizes are capped."""

from __future__ import annotations

import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._drift import spec_hash
from tests.integration.reconcile.conftest import Ansible, Core, mutating, pool_dict
from tests.integration.reconcile.test_reconcile import assert_no_busy_runner_killed, served


def idle_runners(core: Core, pool: str) -> list[dict[str, t.Any]]:
    return [r for r in core.runners(pool) if r["status"] == "online" and not r["busy"]]


def label_names(runner: dict[str, t.Any]) -> set[str]:
    return {label["name"] for label in runner["labels"]}


def test_changed_labels_replace_idle_runners_within_two_reconciles_and_leave_busy_ones(
    sandbox: t.Any, core: Core
) -> None:
    repo = sandbox.env["GITHUB_REPOSITORY"]
    pool = pool_dict(sandbox, labels=["self-hosted", "drift-old"], min_idle=2, max_runners=5)
    name = pool["name"]
    core.reconcile([pool])
    core.wait_idle(name, 2)
    sandbox.control.post("/jobs", {"repository": repo, "labels": ["self-hosted", "drift-old"], "duration": 8.0})
    core.wait_for("a busy runner", lambda: any(r["busy"] for r in core.runners(name)))
    busy = {r["name"] for r in core.runners(name) if r["busy"]}
    core.reconcile([pool])  # busy 1 + idle 2
    core.wait_idle(name, 2)
    old_spec, new_pool = spec_hash(core.spec(pool)), pool | {"labels": ["self-hosted", "drift-new"]}
    assert {s["metadata"]["ghr_spec"] for s in core.servers(name)} == {old_spec}

    reports = []
    for _round in range(2):
        report = core.reconcile([new_pool])
        assert report.errors == []
        reports.append(report.pools[0])
        core.wait_idle(name, 2)
    # Every idle runner now carries the new labels, and its VM the new spec's hash.
    idle = idle_runners(core, name)
    assert len(idle) >= 2 and all("drift-new" in label_names(r) for r in idle)
    new_spec = spec_hash(core.spec(new_pool))
    idle_names = {r["name"] for r in idle}
    assert {s["metadata"]["ghr_spec"] for s in core.servers(name) if s["name"] in idle_names} == {new_spec}
    replaced = [n for r in reports for n in r.execution.deleted.get("outdated", [])]
    assert len(replaced) == 2 and not busy & set(replaced)
    assert not busy & {n for r in reports for names in r.execution.deleted.values() for n in names} - {
        n for r in reports for n in r.execution.deleted.get("finished", [])
    }
    assert_no_busy_runner_killed(sandbox)

    # A job that asks for the new label is served by one of the new runners.
    before = {j["id"] for j in served(sandbox, repo)}
    sandbox.control.post("/jobs", {"repository": repo, "labels": ["self-hosted", "drift-new"], "duration": 0.2})

    def new_job_done() -> bool:
        jobs = [j for j in served(sandbox, repo) if j["id"] not in before]
        return len(jobs) == 1 and jobs[0]["status"] == "completed"

    core.wait_for("the job asking for the new label served", new_job_done)

    def emptied() -> bool:
        core.reconcile([new_pool], mode="absent")
        return core.servers(name) == [] and core.runners(name) == []

    core.wait_for("pool empty", emptied, timeout=60)
    assert_no_busy_runner_killed(sandbox)


def test_a_huge_min_idle_creates_at_most_max_create_per_run_and_says_so(
    sandbox: t.Any, ansible: Ansible, core: Core
) -> None:
    pool = pool_dict(sandbox, min_idle=100000, max_runners=1000, max_create_per_run=3)
    args = {"controller_id": core.controller_id, "pools": [pool]}
    sandbox.reset_counters()
    checked = ansible.run("github_runner_pool", args, check=True).result
    assert mutating(sandbox.counters()) == []
    assert checked["pools"][0]["plan"]["create"] == 3 and checked["pools"][0]["plan"]["limited"] == 997
    assert any("max_create_per_run (3)" in w for w in checked["warnings"])
    assert any("above max_runners (1000)" in w for w in checked["warnings"])

    for runs in (1, 2):
        result = ansible.run("github_runner_pool", args).result
        assert len(result["pools"][0]["created"]) == 3
        assert len(core.servers(pool["name"])) == 3 * runs
        assert any("max_create_per_run (3)" in w for w in result["warnings"])
    ansible.run("github_runner_pool", {**args, "state": "absent", "force": True})
