"""Reconciles on a failing cloud, against fakes: creation backoff and names resolved before any JIT registration."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import PoolSpec
from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import (
    CloudError,
    QuotaExceededError,
    UnresolvedError,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._manager import PlanExecutor
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reconcile import ReconcileOptions, Reconciler
from ansible_collections.selfhosted.github_runners.plugins.module_utils._report import ReconcileReport
from tests.unit.plugins.module_utils.fakes import NOW, FakeCloud, FakeGithub, MemoryLock
from tests.unit.plugins.module_utils.test_manager import SCOPE, make_pool
from tests.unit.plugins.module_utils.test_reconcile import bring_online

NO_VALID_HOST = "No valid host was found. "


def setup_function() -> None:
    MemoryLock.states.clear()


def reconcile(
    github: FakeGithub, cloud: FakeCloud, pools: list[PoolSpec], at: float = 0.0, **options: object
) -> ReconcileReport:
    """One reconcile `at` seconds after NOW, with the jitter at its middle."""
    now = NOW + datetime.timedelta(seconds=at)
    reconciler = Reconciler(github, cloud, lambda key: MemoryLock(key, []), clock=lambda: now, rng=lambda: 0.5)
    return reconciler.run(pools, ReconcileOptions("ci1", **options))  # type: ignore[arg-type]


# --- creation backoff -------------------------------------------------------------------------


def test_creates_that_end_in_error_back_off_instead_of_churning() -> None:
    github, cloud = FakeGithub(), FakeCloud()
    cloud.boot_fault = NO_VALID_HOST
    pool = make_pool(min_idle=2)
    reports = [reconcile(github, cloud, [pool], at=30.0 * i) for i in range(5)]
    # Run 1 creates 2 (both end in ERROR); run 2 sees them and waits 45 s (60 s, jitter 0.5);
    # run 4 is past that and tries again; run 5 waits 90 s.
    assert [len(r.pools[0].execution.created) for r in reports] == [2, 0, 0, 2, 0]
    assert [r.pools[0].plan.held for r in reports] == [0, 2, 2, 0, 2]
    assert cloud.calls["create_server"] == github.calls["generate_jit_config"] == 4
    # The ERROR VMs are cleaned up while creations wait.
    assert reports[1].pools[0].execution.deleted == {"failed": sorted(reports[0].pools[0].execution.created)}
    info = reports[4].pools[0].backoff_info()
    assert info == {
        "active": True,
        "backoff_until": "2026-01-01T12:03:30Z",  # 120 s + 90 s
        "consecutive_failures": 4,
        "last_fault": "No valid host was found.",
        "fault_kind": "no_valid_host",
    }
    assert reports[4].errors == []
    assert reports[4].warnings == [
        "pool small: creations back off until 2026-01-01T12:03:30Z after 4 failed creations in a row"
        " (no_valid_host): No valid host was found."
    ]
    assert "2 held back until 2026-01-01T12:03:30Z (creation backoff)" in reports[4].pools[0].summary()


def test_quota_refused_at_create_backs_off_the_next_run() -> None:
    github, cloud = FakeGithub(), FakeCloud()
    cloud.fail_create = QuotaExceededError("POST /servers", "Quota exceeded for instances: Requested 1", 403)
    pool = make_pool(min_idle=3, create_concurrency=1)
    first = reconcile(github, cloud, [pool])
    assert cloud.calls["create_server"] == 1 and first.errors
    second = reconcile(github, cloud, [pool], at=10.0)
    assert cloud.calls["create_server"] == github.calls["generate_jit_config"] == 1
    assert second.pools[0].plan.held == 3
    assert second.pools[0].backoff_info()["fault_kind"] == "quota"
    assert second.errors == []


def test_a_5xx_on_create_stops_the_run_and_backs_off() -> None:
    github, cloud = FakeGithub(), FakeCloud()
    cloud.fail_create = CloudError("POST /servers", "Unexpected API Error.", 500)
    pool = make_pool(min_idle=4, create_concurrency=1)
    first = reconcile(github, cloud, [pool])
    assert cloud.calls["create_server"] == 1  # no further attempt, each with a JIT registration
    assert first.pools[0].backoff.failures == 1
    assert reconcile(github, cloud, [pool], at=5.0).pools[0].plan.held == 4
    assert github.runners[SCOPE] == {}


def test_a_runner_that_comes_online_ends_the_backoff() -> None:
    github, cloud = FakeGithub(), FakeCloud()
    cloud.boot_fault = NO_VALID_HOST
    pool = make_pool(min_idle=2)
    reconcile(github, cloud, [pool])
    assert reconcile(github, cloud, [pool], at=10.0).pools[0].backoff.failures == 2
    cloud.boot_fault = None  # the cloud heals
    retried = reconcile(github, cloud, [pool], at=100.0)
    assert len(retried.pools[0].execution.created) == 2
    cloud.boot()
    bring_online(github)
    healed = reconcile(github, cloud, [pool], at=110.0).pools[0]
    assert healed.backoff_info() == {
        "active": False,
        "backoff_until": None,
        "consecutive_failures": 0,
        "last_fault": None,
        "fault_kind": None,
    }
    assert MemoryLock.states["ci1-small"]["backoff"]["failures"] == 0
    # Scale-up goes at once again.
    bigger = reconcile(github, cloud, [dataclasses.replace(pool, min_idle=4)], at=111.0)
    assert len(bigger.pools[0].execution.created) == 2


def test_check_mode_reports_the_backoff_and_writes_no_state() -> None:
    github, cloud = FakeGithub(), FakeCloud()
    cloud.boot_fault = NO_VALID_HOST
    pool = make_pool(min_idle=2)
    reconcile(github, cloud, [pool])
    saved = dict(MemoryLock.states["ci1-small"])
    # Check mode sees the ERROR VMs: it reports the backoff the real run would start.
    checked = reconcile(github, cloud, [pool], at=10.0, check_mode=True)
    assert MemoryLock.states["ci1-small"] == saved
    assert checked.pools[0].plan.held == 2 and checked.pools[0].plan.create == 0
    assert checked.pools[0].backoff_info()["active"] is True
    real = reconcile(github, cloud, [pool], at=10.0)
    assert real.pools[0].plan == checked.pools[0].plan
    assert real.pools[0].backoff_info() == checked.pools[0].backoff_info()
    saved = dict(MemoryLock.states["ci1-small"])
    again = reconcile(github, cloud, [pool], at=20.0, check_mode=True)
    assert again.pools[0].backoff_info()["active"] is True
    assert MemoryLock.states["ci1-small"] == saved


def test_a_backoff_holds_one_pool_only() -> None:
    github, cloud = FakeGithub(), FakeCloud()
    small, big = make_pool(name="small", min_idle=1), make_pool(name="big", min_idle=1)
    MemoryLock.states["ci1-small"] = {
        "backoff": {"failures": 1, "rounds": 1, "until": "2026-01-01T13:00:00Z", "last_fault": NO_VALID_HOST}
    }
    report = reconcile(github, cloud, [small, big])
    assert [(p.pool, len(p.execution.created), p.plan.held) for p in report.pools] == [("small", 0, 1), ("big", 1, 0)]


# --- names resolved before any JIT registration ----------------------------------------------------


def test_an_unknown_image_costs_no_jit_registration_and_stops_only_its_pool() -> None:
    github, cloud = FakeGithub(), FakeCloud()
    cloud.unknown["image"].add("ubuntu-24.04-runnr")
    typo = make_pool(name="typo", image="ubuntu-24.04-runnr", min_idle=5)
    good = dataclasses.replace(make_pool(name="good", min_idle=1), path="pools[1]")
    report = reconcile(github, cloud, [typo, good])
    assert github.calls["generate_jit_config"] == 1  # the good pool's runner only
    assert report.errors == ["pool typo: pools[0].image: no image named 'ubuntu-24.04-runnr'"]
    assert [len(p.execution.created) for p in report.pools] == [0, 1]
    # A configuration error, not a failing cloud: no backoff.
    assert report.pools[0].backoff.failures == 0


def test_each_field_is_named_networks_and_security_groups_too() -> None:
    github, cloud = FakeGithub(), FakeCloud()
    cloud.unknown["security_group"].add("no-ingres")
    pool = dataclasses.replace(
        make_pool(networks=("net", "net2"), security_groups=("default", "no-ingres")), path="pools[3]"
    )
    report = reconcile(github, cloud, [pool])
    assert report.errors == ["pool small: pools[3].security_groups[1]: no security group named 'no-ingres'"]
    fresh = FakeCloud()
    fresh.unknown["network"].add("net2")
    assert reconcile(github, fresh, [pool]).errors == ["pool small: pools[3].networks[1]: no network named 'net2'"]
    assert github.calls["generate_jit_config"] == 0


def test_create_runner_resolves_before_registering() -> None:
    github, cloud = FakeGithub(), FakeCloud()
    cloud.unknown["flavor"].add("m1.smal")
    executor = PlanExecutor(github, cloud, "ci1", clock=lambda: NOW)
    with pytest.raises(UnresolvedError, match=r"^pool\.flavor: no flavor named 'm1\.smal'$") as info:
        executor.create_runner(dataclasses.replace(make_pool(flavor="m1.smal"), path="pool"), 1)
    assert info.value.field == "pool.flavor"
    assert github.calls["generate_jit_config"] == 0


def test_check_mode_names_a_pool_whose_names_do_not_resolve() -> None:
    github, cloud = FakeGithub(), FakeCloud()
    cloud.unknown["image"].add("ubuntu-24.04-runnr")
    pool = make_pool(image="ubuntu-24.04-runnr")
    report = reconcile(github, cloud, [pool], check_mode=True)
    assert report.errors == ["pool small: pools[0].image: no image named 'ubuntu-24.04-runnr'"]
    assert github.total_calls == 1 and cloud.calls["create_server"] == 0  # the listing only
    # Nothing to create, nothing to look up.
    assert reconcile(github, FakeCloud(), [make_pool(min_idle=0)], check_mode=True).errors == []
