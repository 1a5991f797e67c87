"""Reconcile orchestration: shared listings, locking, check mode and steady state, against fakes."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import (
    GithubRunner,
    QueuedJob,
    Scope,
    ScopeKind,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reconcile import (
    ReconcileOptions,
    Reconciler,
    wait_for_idle,
)
from tests.unit.plugins.module_utils.fakes import NOW, FakeCloud, FakeGithub, MemoryLock, mutating_calls
from tests.unit.plugins.module_utils.test_manager import SCOPE, make_pool


def bring_online(github: FakeGithub) -> None:
    """What the runner VMs do after boot: their runners come online."""
    for runners in github.runners.values():
        for runner_id, runner in list(runners.items()):
            runners[runner_id] = dataclasses.replace(runner, online=True)


def make_reconciler(github: FakeGithub, cloud: FakeCloud, held: list[str], now: datetime.datetime = NOW) -> Reconciler:
    return Reconciler(github, cloud, lambda key: MemoryLock(key, held), clock=lambda: now)


def setup_function() -> None:
    MemoryLock.states.clear()


def test_first_run_creates_then_steady_state_makes_no_mutating_call() -> None:
    github, cloud, held = FakeGithub(), FakeCloud(), []
    pool = make_pool(min_idle=3)
    first = make_reconciler(github, cloud, held).run([pool], ReconcileOptions("ci1"))
    assert first.changed
    assert len(first.pools[0].execution.created) == 3
    bring_online(github)
    github.calls.clear()
    cloud.calls.clear()
    second = make_reconciler(github, cloud, held, NOW + datetime.timedelta(seconds=30)).run(
        [pool], ReconcileOptions("ci1")
    )
    assert not second.changed
    assert mutating_calls(github, cloud) == 0
    assert github.calls["list_runners"] == 1
    assert cloud.calls["list_servers"] == 1
    assert second.pools[0].states()["idle"] == 3


def test_check_mode_mutates_nothing_and_predicts_the_real_run() -> None:
    github, cloud, held = FakeGithub(), FakeCloud(), []
    pool = make_pool(min_idle=2)
    finished = cloud.add("ci1-small-000000000001", "small", status="SHUTOFF", age=600)
    checked = make_reconciler(github, cloud, held).run([pool], ReconcileOptions("ci1", check_mode=True))
    assert mutating_calls(github, cloud) == 0
    assert checked.changed
    real = make_reconciler(github, cloud, held).run([pool], ReconcileOptions("ci1"))
    assert real.pools[0].plan == checked.pools[0].plan
    assert len(real.pools[0].execution.created) == checked.pools[0].plan.create == 2
    assert real.pools[0].execution.deleted == {"finished": [finished.name]}
    diff = checked.diff()
    assert diff["before"]["small"] == {finished.name: "finished"}
    assert sorted(diff["after"]["small"]) == ["(new runner 1)", "(new runner 2)"]


def test_pools_of_one_scope_share_one_runner_listing_and_lock_in_order() -> None:
    github, cloud, held = FakeGithub(), FakeCloud(), []
    other_scope = Scope(ScopeKind.ORGANIZATION, "octo-org")
    pools = [
        make_pool(name="zeta", min_idle=0),
        make_pool(name="alpha", min_idle=0),
        make_pool(name="org", scope=other_scope),
    ]
    make_reconciler(github, cloud, held).run(pools, ReconcileOptions("ci1"))
    assert github.calls["list_runners"] == 2  # one per scope, not per pool
    assert cloud.calls["list_servers"] == 1  # one per cloud
    taken = [key for key in held if not key.startswith("renew ")]
    assert taken == ["ci1-alpha", "ci1-org", "ci1-zeta"]
    # Before each pool is carried out, every lease is renewed.
    assert sum(key.startswith("renew ") for key in held) == 3 * 3


def test_other_controllers_runners_are_never_touched() -> None:
    github, cloud, held = FakeGithub(), FakeCloud(), []
    foreign = github.add(SCOPE, "other-small-aaaaaaaaaaaa", online=False)
    manual = github.add(SCOPE, "my-laptop", online=True)
    make_reconciler(github, cloud, held).run([make_pool(min_idle=0)], ReconcileOptions("ci1", mode="absent"))
    assert set(github.runners[SCOPE]) == {foreign.id, manual.id}
    assert github.calls["delete_runner"] == 0


def test_absent_defers_busy_runners_and_deletes_idle() -> None:
    github, cloud, held = FakeGithub(), FakeCloud(), []
    idle = github.add(SCOPE, "ci1-small-aaaaaaaaaaaa")
    busy = github.add(SCOPE, "ci1-small-bbbbbbbbbbbb", busy=True)
    for runner in (idle, busy):
        cloud.add(runner.name, "small", runner_id=runner.id)
    report = make_reconciler(github, cloud, held).run([make_pool()], ReconcileOptions("ci1", mode="absent"))
    pool = report.pools[0]
    assert pool.plan.deferred == (busy.name,)
    assert pool.execution.deleted == {"absent": [idle.name]}
    assert [vm.name for vm in cloud.servers.values()] == [busy.name]
    assert list(github.runners[SCOPE].values()) == [GithubRunner(busy.id, busy.name, True, True, busy.labels)]


def test_queued_jobs_size_the_pool_and_each_job_counts_once() -> None:
    github, cloud, held = FakeGithub(), FakeCloud(), []
    github.queued[SCOPE] = [
        QueuedJob(i, 1, "octo-org/app", labels) for i, labels in enumerate([("small",), ("small",), ("gpu",), ("big",)])
    ]
    small = make_pool(name="small", labels=("self-hosted", "small"), min_idle=0, max_runners=5)
    gpu = make_pool(name="gpu", labels=("self-hosted", "gpu"), min_idle=0, max_runners=5)
    anything = make_pool(name="any", labels=("self-hosted", "small", "gpu"), min_idle=0, max_runners=5)
    report = make_reconciler(github, cloud, held).run(
        [small, gpu, anything], ReconcileOptions("ci1", count_queued_jobs=True)
    )
    created = {p.pool: len(p.execution.created) for p in report.pools}
    assert created == {"small": 2, "gpu": 1, "any": 0}  # "big" fits no pool
    assert github.calls["list_queued_jobs"] == 1  # once per scope


def test_queued_jobs_are_not_asked_for_unless_enabled() -> None:
    github, cloud, held = FakeGithub(), FakeCloud(), []
    github.queued[SCOPE] = [QueuedJob(1, 1, "octo-org/app", ("small",))]
    make_reconciler(github, cloud, held).run([make_pool(min_idle=0)], ReconcileOptions("ci1"))
    assert github.calls["list_queued_jobs"] == 0
    assert cloud.servers == {}


def test_wait_for_idle_polls_until_min_idle_then_returns_counts() -> None:
    github, cloud, held = FakeGithub(), FakeCloud(), []
    pool = make_pool(min_idle=2)
    reconciler = make_reconciler(github, cloud, held)
    reconciler.run([pool], ReconcileOptions("ci1"))
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            bring_online(github)

    assert wait_for_idle(reconciler, [pool], "ci1", timeout=60, sleep=sleep) == {"small": 2}
    assert sleeps == [1.0, 2.0, 4.0]


def test_wait_for_idle_times_out_with_the_counts() -> None:
    github, cloud, held = FakeGithub(), FakeCloud(), []
    pool = make_pool(min_idle=1)
    reconciler = make_reconciler(github, cloud, held)
    with pytest.raises(TimeoutError, match=r"small: 0/1 idle"):
        wait_for_idle(reconciler, [pool], "ci1", timeout=0, sleep=lambda s: None)


def test_runner_without_vm_is_an_orphan_when_no_history_was_kept() -> None:
    github, cloud, held = FakeGithub(), FakeCloud(), []
    leftover = github.add(SCOPE, "ci1-small-aaaaaaaaaaaa", online=False)
    # A fresh lock store (e.g. a new AWX container): nothing says how old the record is.
    report = make_reconciler(github, cloud, held).run([make_pool(min_idle=0)], ReconcileOptions("ci1"))
    assert report.pools[0].execution.deleted == {"orphan": [leftover.name]}
