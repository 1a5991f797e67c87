"""Locks and limits of a reconcile against the sandbox and a real MongoDB-compatible server."""

from __future__ import annotations

import threading
import time
import typing as t
import uuid

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import LockError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._lock import MongoLease
from ansible_collections.selfhosted.github_runners.plugins.module_utils._ratelimit import TokenBucket
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reconcile import ReconcileOptions, Reconciler
from tests.integration.reconcile.conftest import Ansible, Core, pool_dict
from tests.sandbox.mongo import MongoServer

pytestmark = pytest.mark.sandbox


class RecordingLease(MongoLease):
    """A MongoLease that notes when it was acquired and when its release began (monotonic)."""

    def acquire(self) -> None:
        super().acquire()
        self.acquired_at = time.monotonic()

    def release(self) -> None:
        self.released_at = time.monotonic()
        super().release()


def test_a_pool_that_outlasts_its_lease_ttl_keeps_the_lease_and_another_reconcile_waits(
    fresh_sandbox_state: t.Any, core: Core, mongodb: MongoServer
) -> None:
    sandbox = fresh_sandbox_state
    collection = f"locks_{uuid.uuid4().hex[:8]}"
    leases: list[RecordingLease] = []

    def locks(wait_timeout: float) -> t.Callable[[str], RecordingLease]:
        def factory(key: str) -> RecordingLease:
            lease = RecordingLease(mongodb.uri, "ghr_test", collection, key, ttl=2.0, wait_timeout=wait_timeout)
            leases.append(lease)
            return lease

        return factory

    # Each create takes a second: the pool's six take three times the lease's ttl.
    sandbox.add_fault(kind="latency", service="nova", method="POST", route="/servers", delay=1.0, count=None)
    pool = core.spec(pool_dict(sandbox, min_idle=6, max_runners=6, create_concurrency=1))
    options = ReconcileOptions(core.controller_id)
    first = Reconciler(core.github(), core.cloud(), locks(wait_timeout=10))
    outcome: dict[str, t.Any] = {}

    def reconcile_first() -> None:
        outcome["first"] = first.run([pool], options)

    thread = threading.Thread(target=reconcile_first)
    thread.start()
    core.wait_for("the first server create", lambda: len(core.servers(pool.name)) >= 1)
    second = Reconciler(core.github(), core.cloud(), locks(wait_timeout=3.0))
    try:
        outcome["second"] = second.run([pool], options)
    except LockError as exc:
        outcome["second"] = exc
    thread.join(60)
    sandbox.clear_faults()

    holder, waiter = leases
    assert outcome["first"].errors == []
    assert len(outcome["first"].pools[0].execution.created) == 6
    # The second reconcile never held the pool while the first did.
    assert not hasattr(waiter, "acquired_at") or waiter.acquired_at >= holder.released_at
    assert isinstance(outcome["second"], LockError) or outcome["second"].pools[0].plan.create == 0
    assert len(core.servers(pool.name)) <= pool.max_runners
    core.reconcile([pool_dict(sandbox, name=pool.name)], mode="absent")


JIT = "/repos/{owner}/{repo}/actions/runners/generate-jitconfig"


def test_a_rate_limit_a_run_was_told_to_wait_out_holds_back_the_next_runs_changes(
    fresh_sandbox_state: t.Any, core: Core
) -> None:
    sandbox = fresh_sandbox_state
    pool = pool_dict(sandbox, min_idle=2)
    sandbox.add_fault(
        kind="github_rate_limit_secondary", headers={"Retry-After": "300"}, match={"method": "POST", "route": JIT}
    )
    first = core.reconcile([pool])
    assert any("secondary rate limit" in e for e in first.errors)
    assert first.github_rate.not_before is not None
    servers = len(core.servers(pool["name"]))  # a create that went before the limit
    # The next timer run: a new process and client, nothing but the pool's state to go by.
    sandbox.clear_faults()
    sandbox.reset_counters()
    second = core.reconcile([pool])
    assert sandbox.calls("github", "POST", JIT) == 0
    assert sandbox.calls("github", "DELETE") == 0
    assert second.errors == []
    report = second.pools[0]
    assert report.github_not_before is not None and report.github_not_before >= first.github_rate.not_before
    assert report.plan.create == 0
    assert "no GitHub change before" in report.summary()
    assert any("rate limit holds back" in w for w in second.warnings)
    assert len(core.servers(pool["name"])) == servers
    # Clean up as a controller without that state would.
    Core(sandbox, core.lock_dir.parent / "cleanup").reconcile([pool], mode="absent")


def test_one_write_bucket_paces_all_pools_of_a_run_and_the_wait_is_reported(
    fresh_sandbox_state: t.Any, core: Core
) -> None:
    sandbox = fresh_sandbox_state
    pools = [pool_dict(sandbox, min_idle=2), pool_dict(sandbox, min_idle=2)]
    slept: list[float] = []
    # A bucket whose clock stands still: each token after the burst of 2 waits one more second.
    reconciler = core.reconciler(write_bucket=TokenBucket(2, 60, clock=lambda: 0.0), sleep=slept.append)
    report = reconciler.run([core.spec(p) for p in pools], ReconcileOptions(core.controller_id))
    assert report.errors == []
    assert sum(len(p.execution.created) for p in report.pools) == 4
    assert sorted(slept) == [1.0, 2.0]  # the second pool's JIT requests waited on the first pool's tokens
    assert report.github_rate.write_wait == 3.0
    assert report.as_dict()["github_rate"]["write_wait"] == 3.0
    for pool in pools:
        core.reconcile([pool], mode="absent")


def test_counting_queued_jobs_stops_at_its_budget_and_the_pools_are_still_reconciled(
    fresh_sandbox_state: t.Any, core: Core
) -> None:
    sandbox = fresh_sandbox_state
    org = sandbox.env["GITHUB_ORG"]
    label = f"itq{uuid.uuid4().hex[:6]}"
    for repository in (f"{org}/app", f"{org}/infra"):
        sandbox.control.post("/jobs", {"repository": repository, "labels": ["self-hosted", label]})
    pool = pool_dict(sandbox, repository=None, organization=org, labels=["self-hosted", label], max_runners=2)
    capped = core.reconcile([pool], count_queued_jobs=True, queued_jobs_max_requests=3)
    assert capped.errors == []
    scan = capped.queued_jobs
    assert scan is not None and scan.requests == 3 and scan.stopped_by == "max_requests"
    assert scan.skipped_repositories is not None and scan.skipped_repositories >= 1
    assert capped.as_dict()["queued_jobs"]["skipped_repositories"] == scan.skipped_repositories
    assert any("count_queued_jobs" in w and "not looked at" in w for w in capped.warnings)
    floored = core.reconcile([pool], count_queued_jobs=True, queued_jobs_rate_limit_floor=10**9)
    assert floored.errors == []
    assert floored.queued_jobs is not None and floored.queued_jobs.requests == 0
    assert floored.queued_jobs.stopped_by == "rate_limit_floor"
    assert floored.api_calls["github"] >= 1  # the runner listing ran all the same
    core.reconcile([pool], mode="absent")


def test_the_module_takes_the_limits_and_reports_them(
    fresh_sandbox_state: t.Any, ansible: Ansible, mongodb: MongoServer
) -> None:
    sandbox = fresh_sandbox_state
    pool = pool_dict(sandbox, repository=None, organization=sandbox.env["GITHUB_ORG"])
    args = {"controller_id": "it", "pools": [pool], "count_queued_jobs": True}
    run = ansible.run(
        "github_runner_pool",
        args | {"count_queued_jobs_max_requests": 1, "github_write_burst": 10, "github_writes_per_minute": 10},
    )
    result = run.result
    assert result["queued_jobs"]["requests"] == 1 and result["queued_jobs"]["stopped_by"] == "max_requests"
    assert isinstance(result["github_rate"]["remaining"], int)
    assert result["github_rate"]["write_wait"] == 0.0
    assert result["pools"][0]["github_not_before"] is None
    assert any("count_queued_jobs" in w for w in result.get("warnings", []))

    bad_burst = ansible.run("github_runner_pool", args | {"github_write_burst": 0}, expect_failure=True)
    assert bad_burst.result["field"] == "github_write_burst"
    short_ttl = ansible.run(
        "github_runner_pool", args | {"mongodb_uri": mongodb.uri, "lock_ttl": 5}, expect_failure=True
    )
    assert short_ttl.result["field"] == "lock_ttl"
    leased = ansible.run("github_runner_pool", args | {"mongodb_uri": mongodb.uri, "lock_ttl": 30}).result
    assert leased["pools"][0]["errors"] == []
