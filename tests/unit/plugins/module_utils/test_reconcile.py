"""Reconcile orchestration: shared listings, locking, check mode and steady state, against fakes."""

from __future__ import annotations

import dataclasses
import datetime
import typing as t

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import LockError
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
    assert held == ["ci1-alpha", "ci1-org", "ci1-zeta"]


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


# Scopes ------------------------------------------------------------------------------------

ORG = Scope(ScopeKind.ORGANIZATION, "octo-org")


def test_busy_runner_survives_its_pool_moving_to_another_scope() -> None:
    github, cloud, held = FakeGithub(), FakeCloud(), []
    repo_pool = make_pool(min_idle=1, max_runners=3)
    make_reconciler(github, cloud, held).run([repo_pool], ReconcileOptions("ci1"))
    [vm] = list(cloud.servers.values())
    [runner] = list(github.runners[SCOPE].values())
    github.runners[SCOPE][runner.id] = dataclasses.replace(runner, online=True, busy=True)
    org_pool = dataclasses.replace(repo_pool, scope=ORG)
    github.log.clear()
    github.calls.clear()
    later = NOW + datetime.timedelta(seconds=600)
    for mode in ("present", "flushed", "absent"):
        report = make_reconciler(github, cloud, held, later).run([org_pool], ReconcileOptions("ci1", mode=mode))
        assert vm.id in cloud.servers, mode
        assert report.pools[0].scope_changed == [vm.name]
        assert report.pools[0].as_dict()["scope_changed"] == [vm.name]
    # GitHub was never asked to delete that runner; one listing per scope and run.
    assert runner.id not in [arg for op, arg in github.log if op == "delete_runner"]
    assert github.calls["list_runners"] == 2 * 3
    assert {arg for op, arg in github.log if op == "list_runners"} == {SCOPE, ORG}
    # Once its job is done and its VM powered off, it goes, asked in the repository.
    github.runners[SCOPE][runner.id] = dataclasses.replace(runner, online=False, busy=False)
    cloud.servers[vm.id] = dataclasses.replace(vm, status="SHUTOFF")
    report = make_reconciler(github, cloud, held, later).run([org_pool], ReconcileOptions("ci1", mode="absent"))
    assert report.pools[0].execution.deleted == {"finished": [vm.name]}
    assert github.runners[SCOPE] == {}


def test_vm_without_recorded_scope_is_not_deleted_on_a_404_before_max_lifetime() -> None:
    github, cloud, held = FakeGithub(), FakeCloud(), []
    # Created before scopes were recorded, in the repository; the pool is now organization-wide.
    runner = github.add(SCOPE, "ci1-small-aaaaaaaaaaaa", busy=True)
    vm = cloud.add(runner.name, "small", age=3600, runner_id=runner.id)
    org_pool = make_pool(scope=ORG, min_idle=0)
    for mode in ("present", "flushed", "absent"):
        report = make_reconciler(github, cloud, held).run([org_pool], ReconcileOptions("ci1", mode=mode))
        assert vm.id in cloud.servers, mode
        assert report.pools[0].plan.deferred == (vm.name,)
    assert github.calls["runner_exists"] == github.calls["delete_runner"] == 0
    # Past max_lifetime, GitHub's 404 in the pool's scope is taken as gone.
    old = NOW + datetime.timedelta(seconds=org_pool.timing.max_lifetime)
    report = make_reconciler(github, cloud, held, old).run([org_pool], ReconcileOptions("ci1"))
    assert report.pools[0].execution.deleted == {"finished": [vm.name]}
    assert github.log[-1] == ("runner_exists", (ORG, runner.id))


def test_pools_share_one_listing_per_scope_including_recorded_ones() -> None:
    github, cloud, held = FakeGithub(), FakeCloud(), []
    other_repo = Scope(ScopeKind.REPOSITORY, "octo-org/other")
    cloud.add("ci1-a-aaaaaaaaaaaa", "a", scope=other_repo)
    cloud.add("ci1-b-bbbbbbbbbbbb", "b", scope=other_repo)
    cloud.add("ci1-b-cccccccccccc", "b", scope=ORG)
    pools = [make_pool(name="a", scope=ORG, min_idle=0), make_pool(name="b", min_idle=0)]
    make_reconciler(github, cloud, held).run(pools, ReconcileOptions("ci1"))
    assert sorted(str(arg) for op, arg in github.log if op == "list_runners") == sorted(
        str(s) for s in (ORG, SCOPE, other_repo)
    )


# What is ours ------------------------------------------------------------------------------


def test_vm_with_our_tags_but_a_foreign_name_is_never_touched() -> None:
    github, cloud, held = FakeGithub(), FakeCloud(), []
    # The cloud lists it in pool "small" (it carries our controller and pool tags).
    stray = cloud.add("stray-vm-with-our-tags", "small", age=10**6, status="SHUTOFF", scope=SCOPE)
    gone_pool = cloud.add("stray-gone-vm", "gone", age=10**6, scope=SCOPE)
    pool = make_pool(min_idle=0)
    for options in (
        ReconcileOptions("ci1"),
        ReconcileOptions("ci1", mode="flushed", force=True),
        ReconcileOptions("ci1", mode="absent", force=True, prune_unlisted_pools=True),
    ):
        report = make_reconciler(github, cloud, held).run([pool], options)
        assert report.pools[0].views == []
        assert report.unmanaged == {}
    assert {stray.id, gone_pool.id} <= set(cloud.servers)
    assert cloud.calls["delete_server"] == 0
    info = make_reconciler(github, cloud, held).inspect([pool], "ci1")
    assert info.views == {"small": []} and info.unmanaged == {}


# Pools no longer configured ---------------------------------------------------------------


def test_unlisted_pools_are_reported_and_left_alone_by_default() -> None:
    github, cloud, held = FakeGithub(), FakeCloud(), []
    runner = github.add(SCOPE, "ci1-gone-aaaaaaaaaaaa", online=True)
    cloud.add(runner.name, "gone", runner_id=runner.id, scope=SCOPE)
    cloud.add("ci1-gone-bbbbbbbbbbbb", "gone", status="DELETED", scope=SCOPE)  # on its way out: not counted
    report = make_reconciler(github, cloud, held).run([make_pool(min_idle=0)], ReconcileOptions("ci1"))
    assert report.unmanaged == {"gone": 1}
    assert report.as_dict()["unmanaged"] == {"gone": 1}
    assert len(report.warnings) == 1 and "gone" in report.warnings[0] and "prune_unlisted_pools" in report.warnings[0]
    assert [p.pool for p in report.pools] == ["small"]
    assert mutating_calls(github, cloud) == 0
    assert "ci1-gone" not in held
    assert make_reconciler(github, cloud, held).inspect([make_pool()], "ci1").unmanaged == {"gone": 1}


def test_prune_unlisted_pools_empties_them_as_absent_with_busy_ones_deferred() -> None:
    github, cloud, held = FakeGithub(), FakeCloud(), []
    idle = github.add(ORG, "ci1-gone-aaaaaaaaaaaa", online=True)
    busy = github.add(ORG, "ci1-gone-bbbbbbbbbbbb", busy=True)
    leftover = github.add(ORG, "ci1-gone-cccccccccccc", online=False)  # its VM is gone
    vms = {r.name: cloud.add(r.name, "gone", runner_id=r.id, scope=ORG) for r in (idle, busy)}
    legacy = cloud.add("ci1-gone-dddddddddddd", "gone", runner_id=4242)  # no recorded scope: cannot ask
    options = ReconcileOptions("ci1", prune_unlisted_pools=True)

    checked = make_reconciler(github, cloud, held).run(
        [make_pool(min_idle=0)], dataclasses.replace(options, check_mode=True)
    )
    assert mutating_calls(github, cloud) == 0 and checked.changed

    report = make_reconciler(github, cloud, held).run([make_pool(min_idle=0)], options)
    pruned = report.pools[1]
    assert (pruned.pool, pruned.unlisted, pruned.as_dict()["unlisted"]) == ("gone", True, True)
    assert pruned.execution.deleted == {"absent": [idle.name], "orphan": [leftover.name]}
    assert pruned.plan.deferred == tuple(sorted([busy.name, legacy.name]))
    assert set(cloud.servers) == {vms[busy.name].id, legacy.id}
    assert report.warnings == []  # pruned, not left behind
    assert report.unmanaged == {"gone": 3}
    assert "ci1-gone" in held


class HeldLock(MemoryLock):
    def __enter__(self) -> MemoryLock:
        if self.key == "ci1-gone":
            raise LockError("pool lock ci1-gone is held by pid 1")
        return super().__enter__()


def test_unlisted_pool_held_by_another_reconcile_is_not_pruned() -> None:
    github, cloud, held = FakeGithub(), FakeCloud(), []
    vm = cloud.add("ci1-gone-aaaaaaaaaaaa", "gone", status="SHUTOFF", scope=SCOPE)
    reconciler = Reconciler(github, cloud, lambda key: HeldLock(key, held), clock=lambda: NOW)
    report = reconciler.run([make_pool(min_idle=0)], ReconcileOptions("ci1", prune_unlisted_pools=True))
    assert vm.id in cloud.servers
    assert [p.pool for p in report.pools] == ["small"]
    assert any("gone" in w and "held" in w for w in report.warnings)


def test_a_pool_whose_lock_is_lost_changes_nothing_more_and_says_so() -> None:
    github, cloud, held = FakeGithub(), FakeCloud(), []
    pools = [make_pool(name="lost", min_idle=2), make_pool(name="kept", min_idle=2)]
    reconciler = Reconciler(
        github,
        cloud,
        lambda key: MemoryLock(key, held, lost_after=0 if key == "ci1-lost" else None),
        clock=lambda: NOW,
    )
    report = reconciler.run(pools, ReconcileOptions("ci1"))
    lost, kept = report.pools
    assert lost.execution.created == [] and cloud.calls["create_server"] == 2
    assert len(kept.execution.created) == 2
    assert [e for e in report.errors if "ci1-lost" in e] == report.errors != []
    assert any("not saved" in e for e in lost.execution.errors)
    assert "ci1-lost" not in MemoryLock.states and "ci1-kept" in MemoryLock.states


def test_a_rate_limit_hold_skips_github_changes_keeps_vm_clean_up_and_is_remembered() -> None:
    github, cloud, held = FakeGithub(), FakeCloud(), []
    pool = make_pool(min_idle=2)
    listed = github.add(SCOPE, "ci1-small-00000000000a", online=False)
    gone_vm = cloud.add("ci1-small-00000000000b", "small", status="SHUTOFF", age=600)  # no runner: VM only
    github.not_before = NOW + datetime.timedelta(minutes=5)
    first = make_reconciler(github, cloud, held).run([pool], ReconcileOptions("ci1"))
    report = first.pools[0]
    assert report.github_not_before == github.not_before
    assert report.plan.create == 0 and [d.name for d in report.plan.delete] == [gone_vm.name]
    assert github.calls["generate_jit_config"] == github.calls["delete_runner"] == 0
    assert listed.id in github.runners[SCOPE] and gone_vm.id not in cloud.servers
    assert first.warnings and "rate limit" in first.warnings[0]
    # The next run, with a client that knows nothing of it, learns the hold from the pool's state.
    fresh = FakeGithub()
    make_reconciler(fresh, cloud, held).run([pool], ReconcileOptions("ci1"))
    assert fresh.not_before == github.not_before
    assert fresh.calls["generate_jit_config"] == 0


def test_a_reconcile_drops_the_consumers_census_before_it_creates_and_keeps_it_when_it_does_not() -> None:
    github, cloud, held = FakeGithub(), FakeCloud(), []
    census = {"at": NOW.isoformat(), "names": []}
    MemoryLock.states["ci1-small"] = {"census": census}
    seen_at_create: list[bool] = []
    create = cloud.create_server

    def recording_create(*args: t.Any, **kwargs: t.Any) -> t.Any:
        seen_at_create.append("census" in MemoryLock.states["ci1-small"])
        return create(*args, **kwargs)

    cloud.create_server = recording_create  # type: ignore[method-assign]
    make_reconciler(github, cloud, held).run([make_pool(min_idle=2)], ReconcileOptions("ci1"))
    assert seen_at_create == [False, False]
    assert "census" not in MemoryLock.states["ci1-small"]
    # A run that creates nothing leaves the census to the consumers.
    MemoryLock.states["ci1-idle"] = {"census": census}
    make_reconciler(github, cloud, held).run([make_pool(name="idle", min_idle=0)], ReconcileOptions("ci1"))
    assert MemoryLock.states["ci1-idle"]["census"] == census
