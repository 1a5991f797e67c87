"""Reconcile with the real clients: jobs, safety invariants, faults, API budget.

Scenarios on `both_backends` run against the sandbox and against real Nova; the others
against the sandbox (those marked `sandbox_only` need its fault injection).
"""

from __future__ import annotations

import re
import threading
import time
import typing as t

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._report import ReconcileReport
from tests.integration.conftest import Backend, both_backends
from tests.integration.reconcile.conftest import Core, mutating, pool_dict

QUOTA_FAULT = re.compile(r"Quota exceeded for instances: Requested 1, but already used (\d+) of \1 instances")


def served(sandbox: t.Any, repository: str) -> list[dict[str, t.Any]]:
    return [j for j in sandbox.control.get("/jobs")["jobs"] if j["repository"] == repository]


def assert_no_busy_runner_killed(sandbox: t.Any) -> None:
    """The sandbox's own event log: no VM deleted under a busy runner, no busy runner deleted."""
    killed_vms = [e for e in sandbox.events("server_delete") if e.get("runner_busy")]
    killed_runners = [e for e in sandbox.events("runner_delete") if e.get("busy_at_delete")]
    assert killed_vms == [] and killed_runners == []


def reconcile_until(
    core: Core, pool: dict[str, t.Any], done: t.Callable[[], bool], rounds: int = 40, **options: t.Any
) -> list[ReconcileReport]:
    """Reconcile repeatedly (as a schedule would) until `done`; checks max_runners after every round.

    Returns every round's report: which round did something depends on timing, so callers
    count over all of them.
    """
    reports = []
    for _round in range(rounds):
        report = core.reconcile([pool], **options)
        reports.append(report)
        assert report.errors == []
        assert len(core.servers(pool["name"])) <= pool["max_runners"]
        if done():
            return reports
        time.sleep(0.3)
    raise AssertionError(f"not done after {rounds} reconciles")


def deleted(reports: t.Iterable[ReconcileReport], reason: str | None = None) -> list[str]:
    """The runners the reports' executions deleted (for one reason, or all), over every round."""
    return [
        name
        for report in reports
        for pool in report.pools
        for why, names in pool.execution.deleted.items()
        if reason in (None, why)
        for name in names
    ]


@both_backends
def test_jobs_are_served_within_max_runners_and_pool_empties(sandbox: t.Any, backend: Backend, core: Core) -> None:
    label = "jobs5"
    pool = pool_dict(backend, labels=["self-hosted", label], min_idle=1, max_runners=3)
    core.reconcile([pool])
    core.wait_idle(pool["name"], 1)
    repo = sandbox.env["GITHUB_REPOSITORY"]
    before = {j["id"] for j in served(sandbox, repo)}
    sandbox.control.post("/jobs", {"repository": repo, "labels": ["self-hosted", label], "duration": 0.3, "count": 5})

    def all_done() -> bool:
        jobs = [j for j in served(sandbox, repo) if j["id"] not in before]
        return len(jobs) == 5 and all(j["status"] == "completed" for j in jobs)

    reports = reconcile_until(core, pool | {"min_idle": 3}, all_done)

    # Reconciles delete every VM whose job finished; what remains is booting or serving.
    def only_live_vms_left() -> bool:
        reports.append(core.reconcile([pool]))
        return all(s["status"] in ("BUILD", "ACTIVE") for s in core.servers(pool["name"]))

    core.wait_for("finished VMs deleted", only_live_vms_left)
    # 5 jobs on at most 3 VMs at once: VMs that served a job were deleted, in whichever round.
    assert deleted(reports, "finished"), "no VM was deleted as finished"

    core.reconcile([pool], mode="absent")
    core.wait_for("pool empty", lambda: core.servers(pool["name"]) == [] and core.runners(pool["name"]) == [])
    assert_no_busy_runner_killed(sandbox)


@both_backends
def test_busy_runners_survive_scale_down_absent_and_flush(sandbox: t.Any, backend: Backend, core: Core) -> None:
    label = "busykeep"
    pool = pool_dict(backend, labels=["self-hosted", label], min_idle=2, max_runners=4)
    core.reconcile([pool])
    core.wait_idle(pool["name"], 2)
    repo = sandbox.env["GITHUB_REPOSITORY"]
    # Long enough that the jobs still run through the three reconciles below on a loaded machine.
    sandbox.control.post("/jobs", {"repository": repo, "labels": ["self-hosted", label], "duration": 20.0, "count": 2})
    core.wait_for("both runners busy", lambda: sum(r["busy"] for r in core.runners(pool["name"])) == 2)

    scaled = core.reconcile([pool | {"min_idle": 0}])  # scale down to 0 idle: busy ones stay
    assert scaled.pools[0].plan.delete == ()
    flushed = core.reconcile([pool], mode="flushed")
    assert sorted(flushed.pools[0].plan.deferred) == sorted(r["name"] for r in core.runners(pool["name"]) if r["busy"])
    absent = core.reconcile([pool], mode="absent")
    assert len(absent.pools[0].plan.deferred) == 2
    assert sum(r["busy"] for r in core.runners(pool["name"])) == 2
    assert_no_busy_runner_killed(sandbox)

    # Once the jobs are done, absent removes everything.
    def emptied() -> bool:
        core.reconcile([pool], mode="absent")
        return core.servers(pool["name"]) == [] and core.runners(pool["name"]) == []

    core.wait_for("pool empty after jobs", emptied, timeout=90)
    assert_no_busy_runner_killed(sandbox)


@both_backends
def test_two_concurrent_reconciles_never_exceed_max_runners(backend: Backend, core: Core) -> None:
    pool = pool_dict(backend, min_idle=3, max_runners=3)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            core.reconcile([pool])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run), threading.Thread(target=run)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(core.servers(pool["name"])) == 3
    assert len(core.runners(pool["name"])) == 3
    core.reconcile([pool], mode="absent", force=True)


@pytest.mark.sandbox_only("100 VMs: a scale the sandbox's compute host serves in seconds")
def test_steady_state_with_100_runners_lists_once(sandbox: t.Any, core: Core) -> None:
    pool = pool_dict(sandbox, min_idle=100, max_runners=100, create_concurrency=16, max_create_per_run=100)
    core.reconcile([pool])
    core.wait_idle(pool["name"], 100, timeout=60)
    sandbox.reset_counters()
    report = core.reconcile([pool])
    assert not report.changed
    counters = sandbox.counters()
    assert mutating(counters) == []
    github_gets = sum(c["count"] for c in counters if c["service"] == "github" and c["method"] == "GET")
    nova_lists = sum(c["count"] for c in counters if c["service"] == "nova" and c["route"].startswith("/servers"))
    # Other runners of the scope may exist from earlier tests: one page per 100 runners of the scope.
    total_runners = len(sandbox.control.get("/state")["github"]["runners"])
    assert github_gets == -(-total_runners // 100)
    assert nova_lists == 1
    core.reconcile([pool], mode="absent", force=True)


@pytest.mark.sandbox_only("fault injection: a build that fails, a runner that never connects")
@pytest.mark.parametrize("fault", ["server_error", "runner_never_online"])
def test_failed_runners_are_replaced_without_leaks(sandbox: t.Any, core: Core, fault: str) -> None:
    pool = pool_dict(sandbox, min_idle=2, bootstrap_timeout=1.5)
    sandbox.add_fault(kind=fault, count=1)
    reports = [core.reconcile([pool])]
    time.sleep(2.0)  # past bootstrap_timeout

    def healed() -> bool:
        idle = sum(1 for r in core.runners(pool["name"]) if r["status"] == "online" and not r["busy"])
        return idle == 2 and len(core.servers(pool["name"])) == 2

    reports += reconcile_until(core, pool, healed)
    assert len(deleted(reports)) == 1, [r.pools[0].execution.deleted for r in reports]
    assert len(core.runners(pool["name"])) == 2
    core.reconcile([pool], mode="absent", force=True)


@both_backends
@pytest.mark.parametrize("how", ["no_valid_host", "reset_state"])
def test_error_vms_are_reaped_and_replaced(sandbox: t.Any, backend: Backend, core: Core, how: str) -> None:
    """ERROR by the cloud's own means: a flavor no host can take, or an admin's os-resetState."""
    if how == "no_valid_host":
        # No creation backoff: the replacement is made in the run that reaps (and fails again).
        pool = pool_dict(backend, min_idle=1, flavor="m1.unschedulable", creation_backoff=0)
        core.reconcile([pool])
        core.wait_for("the VM in ERROR", lambda: [s["status"] for s in core.servers(pool["name"])] == ["ERROR"])
        [server] = core.servers(pool["name"])
        assert server["fault"]["message"] == "No valid host was found. "
    else:
        pool = pool_dict(backend, min_idle=1)
        core.reconcile([pool])
        core.wait_idle(pool["name"], 1)
        [server] = core.servers(pool["name"])
        status, answer = backend.admin_action(server["id"], {"os-resetState": {"state": "error"}})
        assert status == 202, answer
        core.wait_for("the VM in ERROR", lambda: [s["status"] for s in core.servers(pool["name"])] == ["ERROR"])
    reaped = core.reconcile([pool])
    assert deleted([reaped]) == [server["name"]]
    assert reaped.pools[0].plan.delete[0].reason.value == "failed"
    assert len(reaped.pools[0].execution.created) == 1  # replaced in the same run
    assert server["id"] not in {s["id"] for s in core.servers(pool["name"])}
    core.reconcile([pool], mode="absent", force=True)
    core.wait_for("pool empty", lambda: core.servers(pool["name"]) == [] and core.runners(pool["name"]) == [])


@pytest.mark.sandbox_only("fault injection: a runner that stops talking to GitHub mid-job")
def test_runner_lost_mid_job_is_replaced(sandbox: t.Any, core: Core) -> None:
    label = "lostjob"
    pool = pool_dict(sandbox, labels=["self-hosted", label], min_idle=1, offline_grace=0.5)
    core.reconcile([pool])
    core.wait_idle(pool["name"], 1)
    sandbox.add_fault(kind="runner_offline_mid_job", count=1)
    repo = sandbox.env["GITHUB_REPOSITORY"]
    sandbox.control.post("/jobs", {"repository": repo, "labels": ["self-hosted", label], "duration": 30.0})
    core.wait_for("runner offline", lambda: any(r["status"] == "offline" for r in core.runners(pool["name"])))
    first = core.reconcile([pool])  # offline but still busy on GitHub: kept, its offline time noted
    assert first.pools[0].plan.delete == ()
    # GitHub fails the job after a while; the runner stays offline and is no longer busy.
    core.wait_for("job failed", lambda: not any(r["busy"] for r in core.runners(pool["name"])))
    time.sleep(0.6)  # past offline_grace
    reports = [core.reconcile([pool])]
    while not deleted(reports, "lost") and len(reports) < 20:  # whichever round sees it past the grace
        time.sleep(0.3)
        reports.append(core.reconcile([pool]))
    assert len(deleted(reports, "lost")) == 1, [r.pools[0].plan for r in reports]
    core.wait_idle(pool["name"], 1)  # the replacement comes online; no further reconcile needed
    assert len(core.servers(pool["name"])) == 1
    assert len(core.runners(pool["name"])) == 1
    assert_no_busy_runner_killed(sandbox)
    core.reconcile([pool], mode="absent", force=True)


@both_backends
def test_orphans_on_both_sides_are_cleaned(backend: Backend, core: Core) -> None:
    pool = pool_dict(backend, min_idle=2, registration_grace=0.5)
    core.reconcile([pool])
    core.wait_idle(pool["name"], 2)
    runners = core.runners(pool["name"])
    github = core.github()
    cloud = core.cloud()
    spec = core.spec(pool)
    # One runner loses its VM, another VM loses its runner.
    vm_of = {s["name"]: s["id"] for s in core.servers(pool["name"])}
    cloud.delete_server(vm_of[runners[0]["name"]])
    assert github.delete_runner(spec.scope, runners[1]["id"]) == "deleted"
    time.sleep(0.7)  # past registration_grace
    report = core.reconcile([pool])  # one reconcile cleans both sides and replaces them
    by_reason = report.pools[0].execution.deleted
    assert sorted(by_reason) == ["finished", "orphan"], by_reason
    assert len(report.pools[0].execution.created) == 2
    core.wait_idle(pool["name"], 2)
    names = sorted(r["name"] for r in core.runners(pool["name"]))
    assert names == sorted(s["name"] for s in core.servers(pool["name"]))
    core.reconcile([pool], mode="absent", force=True)


@pytest.mark.sandbox_only("fault injection: Nova answers 500 to a create")
def test_nova_500_on_create_leaves_no_runner_record(sandbox: t.Any, core: Core) -> None:
    pool = pool_dict(sandbox, min_idle=1, creation_backoff=0)  # retry at once (test_failing_cloud: the backoff)
    sandbox.add_fault(kind="status", service="nova", method="POST", route="/servers", status=500, count=1)
    report = core.reconcile([pool])
    assert report.errors and "HTTP 500" in report.errors[0]
    assert core.runners(pool["name"]) == []
    assert core.servers(pool["name"]) == []
    second = core.reconcile([pool])
    assert second.errors == [] and len(second.pools[0].execution.created) == 1
    core.reconcile([pool], mode="absent", force=True)


@both_backends
def test_over_quota_gives_clear_error_without_retry_storm(backend: Backend, core: Core) -> None:
    """The project's instance quota set by the cloud's means (Nova's quota API on real Nova)."""
    pool = pool_dict(backend, min_idle=4, create_concurrency=1)
    backend.set_instance_quota(0)
    backend.reset_counters()
    report = core.reconcile([pool])
    assert len(report.errors) == 1 and "Quota exceeded for instances" in report.errors[0], report.errors
    assert backend.calls("nova", "POST", "/servers") == 1
    assert core.runners(pool["name"]) == []
    assert core.servers(pool["name"]) == []


@both_backends
def test_concurrent_creates_over_quota_end_in_error_with_the_quota_fault(
    sandbox: t.Any, backend: Backend, core: Core
) -> None:
    """Nova admits concurrent creates past its quota check (202) and puts the racing ones into ERROR."""
    pool = pool_dict(backend, min_idle=5, max_runners=5, create_concurrency=5)
    room = 2
    backend.set_instance_quota(backend.settled_instances() + room)
    if backend.name == "sandbox":
        sandbox.set_config({"openstack.schedule_delay": 2.0})  # the five POSTs surely race
    report = core.reconcile([pool])
    admitted = len(report.pools[0].execution.created)
    refused = [e for e in report.errors if "Quota exceeded" in e]
    assert admitted + len(refused) == 5 and admitted >= 1, report.errors

    def settled() -> bool:
        return all(s["status"] != "BUILD" for s in core.servers(pool["name"]))

    core.wait_for("builds settled", settled)
    servers = core.servers(pool["name"])
    errored = [s for s in servers if s["status"] == "ERROR"]
    assert len(servers) - len(errored) <= room
    assert errored, "no create raced past the quota check"  # 5 concurrent creates, room for 2
    for server in errored:
        assert QUOTA_FAULT.fullmatch(server["fault"]["message"]), server["fault"]
        assert server["fault"]["code"] == 413
    if backend.name == "sandbox":
        sandbox.reset_config()
    core.reconcile([pool], mode="absent", force=True)
    core.wait_for("pool empty", lambda: core.servers(pool["name"]) == [] and core.runners(pool["name"]) == [])


@pytest.mark.sandbox_only("fault injection: a 403 quota answer to any create")
def test_quota_exceeded_gives_clear_error_without_retry_storm(sandbox: t.Any, core: Core) -> None:
    pool = pool_dict(sandbox, min_idle=4, create_concurrency=1)
    sandbox.add_fault(kind="quota_exceeded", count=None)
    sandbox.reset_counters()
    report = core.reconcile([pool])
    sandbox.clear_faults()
    assert len(report.errors) == 1 and "Quota exceeded" in report.errors[0]
    creates = [c for c in sandbox.counters() if c["service"] == "nova" and c["method"] == "POST"]
    assert sum(c["count"] for c in creates) == 1
    assert core.runners(pool["name"]) == []
    core.reconcile([pool], mode="absent", force=True)


@pytest.mark.sandbox_only("fault injection: GitHub answers 422 to a delete")
def test_delete_404_and_422_are_told_apart(sandbox: t.Any, core: Core) -> None:
    pool = pool_dict(sandbox, min_idle=1)
    core.reconcile([pool])
    core.wait_idle(pool["name"], 1)
    runner = core.runners(pool["name"])[0]
    scope = core.spec(pool).scope
    github = core.github()
    sandbox.add_fault(kind="status", service="github", method="DELETE", route="*", status=422, count=1)
    # A 422 leaves the VM: the runner is reported as skipped, not deleted.
    report = core.reconcile([pool], mode="absent")
    assert report.pools[0].execution.skipped_busy == [runner["name"]]
    assert len(core.servers(pool["name"])) == 1
    # A 404 (already gone) lets the VM go.
    assert github.delete_runner(scope, runner["id"]) == "deleted"
    assert github.delete_runner(scope, runner["id"]) == "not_found"
    core.reconcile([pool], mode="absent")
    assert core.servers(pool["name"]) == []


@pytest.mark.sandbox_only("fault injection: a GitHub rate limit")
def test_rate_limit_with_short_reset_waits_then_succeeds(sandbox: t.Any, core: Core) -> None:
    pool = pool_dict(sandbox, min_idle=1)
    reset = int(time.time()) + 2
    sandbox.add_fault(
        kind="status",
        service="github",
        method="GET",
        route="*",
        status=403,
        count=1,
        body={"message": "API rate limit exceeded", "documentation_url": "https://docs.github.com/rest"},
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)},
    )
    report = core.reconcile([pool])
    assert report.errors == [] and len(report.pools[0].execution.created) == 1
    core.reconcile([pool], mode="absent", force=True)


@pytest.mark.sandbox_only("fault injection: a GitHub API that hangs")
def test_api_hang_fires_the_timeout(sandbox: t.Any, core: Core) -> None:
    from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import GithubError

    pool = pool_dict(sandbox, min_idle=1)
    sandbox.add_fault(kind="hang", service="github", method="GET", route="*", count=None, hang_seconds=8)
    github = core.github(timeout=1)
    with pytest.raises(GithubError) as raised:
        github.list_runners(core.spec(pool).scope)
    sandbox.clear_faults()
    assert "timed out" in str(raised.value).lower() or "timeout" in str(raised.value).lower()


def test_queued_jobs_scale_the_pool_up_to_max_runners(sandbox: t.Any, core: Core) -> None:
    label = "queuedscale"
    pool = pool_dict(sandbox, labels=["self-hosted", label], min_idle=0, max_runners=3)
    repo = sandbox.env["GITHUB_REPOSITORY"]
    sandbox.control.post("/jobs", {"repository": repo, "labels": ["self-hosted", label], "duration": 0.2, "count": 5})
    report = core.reconcile([pool], count_queued_jobs=True)
    assert report.pools[0].plan.desired == 3  # 5 queued, capped by max_runners
    assert len(report.pools[0].execution.created) == 3

    def all_done() -> bool:
        jobs = [j for j in served(sandbox, repo) if label in j["labels"]]
        return len(jobs) == 5 and all(j["status"] == "completed" for j in jobs)

    reconcile_until(core, pool, all_done, count_queued_jobs=True)
    core.reconcile([pool], mode="absent", force=True)
