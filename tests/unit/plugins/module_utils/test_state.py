"""Derived runner states: every row of the design's state table, the overlaps, and the history."""

from __future__ import annotations

import datetime
import typing as t

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import (
    GithubRunner,
    PoolTiming,
    RunnerState,
    RunnerView,
    Scope,
    ScopeKind,
    VmInfo,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._state import (
    RunnerHistory,
    derive_states,
    observe,
    record_created,
)
from tests.unit.plugins.module_utils.factories import NOW, SCOPE, TIMING, ago, gh, vm

S = RunnerState
NAME = "ci-small-0123456789ab"


def history(
    *, first_seen: float = 1000.0, online: t.Optional[float] = None, offline: t.Optional[float] = None
) -> RunnerHistory:
    """History of NAME: first seen `first_seen` s ago, online since `online` s ago, offline since `offline` s ago."""
    return RunnerHistory(
        first_seen={NAME: ago(first_seen)},
        online_since={} if online is None else {NAME: ago(online)},
        offline_since={} if offline is None else {NAME: ago(offline)},
    )


def state(
    vm_: t.Optional[VmInfo],
    runner: t.Optional[GithubRunner],
    history_: t.Optional[RunnerHistory] = None,
    timing: PoolTiming = TIMING,
) -> RunnerState:
    views = derive_states([vm_] if vm_ else [], [runner] if runner else [], NOW, timing, history_)
    assert len(views) == 1
    return views[0].state


# --- one row of the table at a time --------------------------------------------


@pytest.mark.parametrize("status", ["BUILD", "ACTIVE"])
def test_booting_offline_before_bootstrap_timeout(status: str) -> None:
    assert state(vm(NAME, status, age=899), gh(NAME)) == S.BOOTING
    assert state(vm(NAME, status, age=899), gh(NAME), history()) == S.BOOTING


def test_idle_online_not_busy() -> None:
    assert state(vm(NAME, "ACTIVE", age=5000), gh(NAME, online=True)) == S.IDLE


def test_busy_online_busy() -> None:
    assert state(vm(NAME, "ACTIVE"), gh(NAME, online=True, busy=True)) == S.BUSY


@pytest.mark.parametrize("status", ["BUILD", "ACTIVE", "PAUSED"])
def test_failed_never_online_past_bootstrap_timeout(status: str) -> None:
    assert state(vm(NAME, status, age=900), gh(NAME)) == S.FAILED
    assert state(vm(NAME, status, age=900), gh(NAME), history()) == S.FAILED


def test_lost_after_offline_grace() -> None:
    assert state(vm(NAME, age=600), gh(NAME), history(online=500, offline=300)) == S.LOST


def test_offline_within_grace_after_online_is_kept_as_idle() -> None:
    assert state(vm(NAME, age=600), gh(NAME), history(online=500, offline=299)) == S.IDLE
    # Not yet seen offline by the history (observe not called): offline "since now".
    assert state(vm(NAME, age=5000), gh(NAME), history(online=4000)) == S.IDLE


def test_without_history_an_offline_runner_past_bootstrap_timeout_is_failed() -> None:
    assert state(vm(NAME, age=5000), gh(NAME)) == S.FAILED


@pytest.mark.parametrize("status", ["SHUTOFF", "DELETED", "SOFT_DELETED"])
def test_finished_vm_ended_without_runner(status: str) -> None:
    assert state(vm(NAME, status, age=5000), None) == S.FINISHED
    # At once: an ended VM cannot come back, there is nothing to wait for.
    assert state(vm(NAME, status, age=1), None) == S.FINISHED


def test_finished_vm_ended_with_leftover_runner() -> None:
    assert state(vm(NAME, "SHUTOFF"), gh(NAME)) == S.FINISHED
    assert state(vm(NAME, "SHUTOFF"), gh(NAME), history(online=50, offline=10)) == S.FINISHED
    assert state(vm(NAME, "SHUTOFF"), gh(NAME, online=True)) == S.FINISHED  # GitHub lags behind


def test_vm_ended_is_finished_even_if_never_seen_online() -> None:
    # A short job between two reconciles is never seen online either.
    assert state(vm(NAME, "SHUTOFF"), gh(NAME), history()) == S.FINISHED
    assert state(vm(NAME, "shutoff"), None) == S.FINISHED


@pytest.mark.parametrize("status", ["BUILD", "ACTIVE"])
def test_finished_running_vm_gone_from_github_after_registration_grace(status: str) -> None:
    assert state(vm(NAME, status, age=120), None) == S.FINISHED
    assert state(vm(NAME, status, age=119), None) == S.BOOTING


@pytest.mark.parametrize("age", [1.0, 5000.0])
def test_vm_in_error_is_failed_at_once(age: float) -> None:
    assert state(vm(NAME, "ERROR", age=age), None) == S.FAILED
    assert state(vm(NAME, "ERROR", age=age), gh(NAME)) == S.FAILED
    assert state(vm(NAME, "ERROR", age=age), gh(NAME, online=True)) == S.FAILED


def test_orphan_runner_without_vm() -> None:
    # Without history the runner's age is unknown and taken as old.
    assert state(None, gh(NAME)) == S.ORPHAN
    assert state(None, gh(NAME, online=True)) == S.ORPHAN
    assert state(None, gh(NAME), history(first_seen=120)) == S.ORPHAN


def test_young_runner_without_vm_is_kept_while_its_vm_is_created() -> None:
    assert state(None, gh(NAME), history(first_seen=119)) == S.BOOTING
    assert state(None, gh(NAME, online=True), history(first_seen=119)) == S.IDLE
    # Not in the history yet: first seen now.
    assert state(None, gh(NAME), RunnerHistory()) == S.BOOTING


def test_expired_past_max_lifetime_when_not_busy() -> None:
    assert state(vm(NAME, age=86400), gh(NAME, online=True)) == S.EXPIRED
    assert state(vm(NAME, age=86399), gh(NAME, online=True)) == S.IDLE
    long_boot = PoolTiming(bootstrap_timeout=2000, offline_grace=10, registration_grace=10, max_lifetime=1000)
    assert state(vm(NAME, "BUILD", age=1500), gh(NAME), timing=long_boot) == S.EXPIRED
    assert state(vm(NAME, age=90000), gh(NAME), history(online=90000, offline=1)) == S.EXPIRED


# --- overlaps -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("vm_", "runner"),
    [
        (vm(NAME, "ACTIVE", age=10**6), gh(NAME, online=True, busy=True)),  # past max_lifetime
        (vm(NAME, "SHUTOFF"), gh(NAME, online=True, busy=True)),
        (vm(NAME, "ERROR"), gh(NAME, online=True, busy=True)),
        (vm(NAME, "DELETED"), gh(NAME, busy=True)),
        (vm(NAME, "ACTIVE", age=10**5), gh(NAME, online=False, busy=True)),  # offline mid-job, still busy
        (None, gh(NAME, online=True, busy=True)),
    ],
)
def test_busy_always_wins(vm_: t.Optional[VmInfo], runner: GithubRunner) -> None:
    assert state(vm_, runner) == S.BUSY
    assert state(vm_, runner, history(online=10**6, offline=10**5)) == S.BUSY


def test_other_nova_statuses_follow_the_runner() -> None:
    assert state(vm(NAME, "REBOOT"), gh(NAME, online=True)) == S.IDLE
    assert state(vm(NAME, "SUSPENDED", age=10), gh(NAME)) == S.BOOTING


# --- the join -------------------------------------------------------------------


def test_join_by_name_sorted_with_ages() -> None:
    a, b, c = "ci-small-aaaaaaaaaaaa", "ci-small-bbbbbbbbbbbb", "ci-small-cccccccccccc"
    views = derive_states(
        [vm(c, age=30), vm(a, age=10)], [gh(b, online=True), gh(a, online=True)], NOW, TIMING, RunnerHistory()
    )
    assert [(v.name, v.state, v.vm is not None, v.github is not None) for v in views] == [
        (a, S.IDLE, True, True),
        (b, S.IDLE, False, True),
        (c, S.BOOTING, True, False),
    ]
    assert [v.age for v in views] == [10.0, 0.0, 30.0]


ORG = Scope(ScopeKind.ORGANIZATION, "octo")


def test_a_vm_joins_the_runner_of_its_recorded_scope_only() -> None:
    # The pool moved to ORG; the VM's runner was registered in the repository (SCOPE).
    in_repo = gh(NAME, online=True, busy=True, runner_id=1, scope=SCOPE)
    same_name_in_org = gh(NAME, runner_id=2, scope=ORG)
    views = derive_states([vm(NAME, age=600, scope=SCOPE)], [same_name_in_org, in_repo], NOW, TIMING, scope=ORG)
    joined = [v for v in views if v.vm is not None]
    assert [(v.github, v.state, v.scope) for v in joined] == [(in_repo, S.BUSY, SCOPE)]
    # The other scope's record of that name has no VM: an orphan there.
    alone = [v for v in views if v.vm is None]
    assert [(v.github, v.state, v.scope) for v in alone] == [(same_name_in_org, S.ORPHAN, ORG)]


def test_a_runner_of_another_scope_never_stands_in_for_the_vms_own() -> None:
    # Only ORG lists the name: the repository-scoped VM's runner is not that one.
    views = derive_states(
        [vm(NAME, age=600, scope=SCOPE)], [gh(NAME, online=True, scope=ORG)], NOW, TIMING, RunnerHistory(), scope=ORG
    )
    assert sorted((v.vm is not None, v.github is not None, v.scope == SCOPE) for v in views) == [
        (False, True, False),
        (True, False, True),
    ]


def test_vms_without_recorded_scope_and_unstamped_runners_take_the_pools_scope() -> None:
    (view,) = derive_states([vm(NAME, scope=None)], [gh(NAME, online=True, scope=None)], NOW, TIMING, scope=ORG)
    assert (view.state, view.scope) == (S.IDLE, ORG)
    (view,) = derive_states([vm(NAME, scope=None)], [gh(NAME, online=True, scope=ORG)], NOW, TIMING, scope=ORG)
    assert (view.state, view.scope) == (S.IDLE, ORG)
    (alone,) = derive_states([vm(NAME, scope=None)], [], NOW, TIMING, scope=ORG)
    assert alone.scope == ORG


def test_age_of_a_runner_without_vm_comes_from_the_history() -> None:
    (view,) = derive_states([], [gh(NAME)], NOW, TIMING, history(first_seen=42))
    assert view.age == 42.0
    (view,) = derive_states([], [gh(NAME)], NOW, TIMING)
    assert view.age == 0.0


def test_duplicate_vm_names_join_the_vm_holding_the_runner_id() -> None:
    runner = gh(NAME, online=True, runner_id=7)
    old = vm(NAME, age=500, vm_id="old", runner_id=99)
    new = vm(NAME, age=400, vm_id="new", runner_id=7)
    views = derive_states([old, new], [runner], NOW, TIMING)
    by_vm = {v.vm.id: v for v in views if v.vm}
    assert by_vm["new"].github == runner and by_vm["new"].state == S.IDLE
    assert by_vm["old"].github is None and by_vm["old"].state == S.FINISHED


def test_duplicate_vm_names_without_metadata_join_the_oldest() -> None:
    views = derive_states([vm(NAME, age=10, vm_id="b"), vm(NAME, age=20, vm_id="a")], [gh(NAME)], NOW, TIMING)
    assert [(v.vm.id if v.vm else None, v.github is not None, v.state) for v in views] == [
        ("a", True, S.BOOTING),
        ("b", False, S.BOOTING),
    ]


def test_vm_created_in_the_future_has_age_zero() -> None:
    (view,) = derive_states([vm(NAME, age=-30)], [gh(NAME)], NOW, TIMING)
    assert view.age == 0.0 and view.state == S.BOOTING


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError):
        derive_states([], [], NOW.replace(tzinfo=None), TIMING)
    with pytest.raises(ValueError):
        observe(None, [], NOW.replace(tzinfo=None))


# --- history --------------------------------------------------------------------


def test_observe_tracks_online_then_offline_then_online() -> None:
    t0, t1, t2, t3 = NOW, NOW + datetime.timedelta(seconds=10), NOW + datetime.timedelta(seconds=20), NOW
    h = observe(None, [gh(NAME)], t0)
    assert h == RunnerHistory(first_seen={NAME: t0})
    assert not h.was_online(NAME)
    h = observe(h, [gh(NAME, online=True)], t1)
    assert h == RunnerHistory(first_seen={NAME: t0}, online_since={NAME: t1})
    h = observe(h, [gh(NAME)], t2)
    assert h.offline_since == {NAME: t2} and h.was_online(NAME)
    h = observe(h, [gh(NAME)], t2 + datetime.timedelta(seconds=5))
    assert h.offline_since == {NAME: t2}  # first time seen offline is kept
    h = observe(h, [gh(NAME, online=True, busy=True)], t3 + datetime.timedelta(seconds=30))
    assert h == RunnerHistory(first_seen={NAME: t0}, online_since={NAME: t1})


def test_observe_forgets_runners_no_longer_listed() -> None:
    h = observe(None, [gh(NAME, online=True), gh("ci-small-aaaaaaaaaaaa")], NOW)
    h = observe(h, [gh("ci-small-aaaaaaaaaaaa")], NOW)
    assert set(h.first_seen) == {"ci-small-aaaaaaaaaaaa"} and not h.online_since


def test_lost_through_observed_history() -> None:
    runner_vm = vm(NAME, age=1000)
    h = observe(None, [gh(NAME, online=True)], ago(900))
    h = observe(h, [gh(NAME)], ago(400))
    h = observe(h, [gh(NAME)], NOW)
    assert state(runner_vm, gh(NAME), h) == S.LOST
    h = observe(observe(None, [gh(NAME, online=True)], ago(900)), [gh(NAME)], ago(100))
    assert state(runner_vm, gh(NAME), h) == S.IDLE


def test_history_round_trip_and_garbage() -> None:
    h = RunnerHistory(
        first_seen={NAME: ago(100), "b": ago(5)}, online_since={NAME: ago(90)}, offline_since={NAME: ago(10)}
    )
    data = h.to_dict()
    assert data["online_since"] == {NAME: "2024-05-01T11:58:30Z"}
    assert RunnerHistory.from_dict(data) == h
    assert RunnerHistory.from_dict(None) == RunnerHistory()
    assert RunnerHistory.from_dict("x") == RunnerHistory()
    assert RunnerHistory.from_dict(
        {"first_seen": {"a": "never", "b": "2024-05-01T11:59:55Z", 3: "x"}}
    ) == RunnerHistory(first_seen={"b": ago(5)})
    assert RunnerHistory.from_dict({"first_seen": ["a"], "online_since": None}) == RunnerHistory()


# --- properties -----------------------------------------------------------------

STATUSES = ["BUILD", "ACTIVE", "SHUTOFF", "ERROR", "DELETED", "REBOOT"]
NAMES = [f"ci-small-{i:012x}" for i in range(6)]


@st.composite
def worlds(draw: st.DrawFn) -> t.Tuple[t.List[VmInfo], t.List[GithubRunner], t.Optional[RunnerHistory]]:
    vm_names = draw(st.lists(st.sampled_from(NAMES), max_size=6))
    vms = [
        vm(name, draw(st.sampled_from(STATUSES)), draw(st.floats(0, 10**5)), vm_id=f"vm{i}")
        for i, name in enumerate(vm_names)
    ]
    runner_names = draw(st.lists(st.sampled_from(NAMES), max_size=6, unique=True))
    runners = [gh(name, online=draw(st.booleans()), busy=draw(st.booleans())) for name in runner_names]
    if draw(st.booleans()):
        return vms, runners, None
    seen = {name: ago(draw(st.floats(0, 10**5))) for name in draw(st.lists(st.sampled_from(NAMES)))}
    online = {name: ago(draw(st.floats(0, 10**5))) for name in draw(st.lists(st.sampled_from(NAMES)))}
    offline = {name: ago(draw(st.floats(0, 10**5))) for name in draw(st.lists(st.sampled_from(NAMES)))}
    return vms, runners, RunnerHistory(seen, online, offline)


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_every_vm_and_runner_appears_once_and_busy_wins(
    world: t.Tuple[t.List[VmInfo], t.List[GithubRunner], t.Optional[RunnerHistory]],
) -> None:
    vms, runners, hist = world
    views: t.List[RunnerView] = derive_states(vms, runners, NOW, TIMING, hist)
    assert sorted(v.vm.id for v in views if v.vm) == sorted(v.id for v in vms)
    assert sorted(v.github.name for v in views if v.github) == sorted(r.name for r in runners)
    for v in views:
        assert v.age >= 0
        assert (v.state == S.BUSY) == v.busy
        if v.vm and v.github:
            assert v.vm.name == v.github.name == v.name
    assert views == derive_states(list(reversed(vms)), list(reversed(runners)), NOW, TIMING, hist)


def test_offline_busy_runner_counts_as_once_online_and_its_offline_time_starts() -> None:
    history = observe(None, [gh("r1", online=False, busy=True)], ago(400))
    assert history.was_online("r1")
    assert history.offline_since["r1"] == ago(400)
    # Once GitHub frees it (job failed), it is lost after offline_grace, not "booting".
    later = observe(history, [gh("r1", online=False, busy=False)], NOW)
    [view] = derive_states([vm("r1", age=600)], [gh("r1")], NOW, TIMING, later)
    assert view.state is RunnerState.LOST


def test_created_runners_age_from_their_creation() -> None:
    history = record_created(RunnerHistory(), ["r1"], ago(200))
    # The VM vanished before any listing saw the runner: an orphan once registration_grace passed.
    seen = observe(history, [gh("r1")], NOW)
    [view] = derive_states([], [gh("r1")], NOW, TIMING, seen)
    assert view.state is RunnerState.ORPHAN
    # Without the record it would look new, and wait another registration_grace.
    [fresh] = derive_states([], [gh("r1")], NOW, TIMING, observe(RunnerHistory(), [gh("r1")], NOW))
    assert fresh.state is not RunnerState.ORPHAN
