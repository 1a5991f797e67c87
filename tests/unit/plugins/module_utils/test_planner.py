"""The planner: case by case, then the invariants as properties."""

from __future__ import annotations

import random
import typing as t

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import PoolSpec
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import (
    ALIVE_STATES,
    DeleteReason,
    Deletion,
    GithubRunner,
    Mode,
    Plan,
    RunnerState,
    RunnerView,
    Scope,
    ScopeKind,
    VmInfo,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._planner import (
    MODES,
    deleted_by_reason,
    plan_pool,
    plan_unlisted_pool,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._state import RunnerHistory, derive_states
from tests.unit.plugins.module_utils.factories import NOW, SCOPE, TIMING, gh, pool, view, vm

S = RunnerState
R = DeleteReason


def names(deletions: t.Iterable[Deletion], reason: t.Optional[DeleteReason] = None) -> t.List[str]:
    return [d.name for d in deletions if reason is None or d.reason == reason]


def views_of(*states: RunnerState, age: float = 60.0) -> t.List[RunnerView]:
    return [view(f"r{i}", s, age=age) for i, s in enumerate(states)]


# --- present ----------------------------------------------------------------------


def test_empty_pool_creates_min_idle() -> None:
    plan = plan_pool(pool(min_idle=3), [])
    assert plan == Plan(pool="small", desired=3, alive=0, create=3)


def test_pool_at_desired_size_plans_nothing() -> None:
    plan = plan_pool(pool(min_idle=2), views_of(S.IDLE, S.BOOTING, S.BUSY))
    assert plan.empty and plan.desired == 3 and plan.alive == 3


@pytest.mark.parametrize("stale", [S.FAILED, S.LOST, S.FINISHED, S.ORPHAN, S.EXPIRED])
def test_stale_runners_are_deleted_with_their_state_as_reason(stale: RunnerState) -> None:
    plan = plan_pool(pool(min_idle=1), views_of(S.IDLE, stale))
    assert plan.delete == (Deletion("r1", DeleteReason(stale.value), "vm-r1", gh("r1").id, scope=SCOPE),)
    assert plan.create == 0 and plan.alive == 1


def test_stale_runners_are_replaced() -> None:
    plan = plan_pool(pool(min_idle=2), views_of(S.FINISHED, S.FAILED, S.IDLE))
    assert names(plan.delete) == ["r0", "r1"] and plan.create == 1


def test_busy_runners_add_to_desired() -> None:
    plan = plan_pool(pool(min_idle=2, max_runners=10), views_of(S.BUSY, S.BUSY, S.BUSY, S.IDLE))
    assert (plan.desired, plan.alive, plan.create) == (5, 4, 1)


def test_queued_jobs_raise_desired_up_to_max_runners() -> None:
    assert plan_pool(pool(min_idle=1, max_runners=10), views_of(S.BUSY), queued_jobs=3).create == 3
    capped = plan_pool(pool(min_idle=1, max_runners=4), views_of(S.BUSY), queued_jobs=10)
    assert (capped.desired, capped.create) == (4, 3)
    assert plan_pool(pool(min_idle=3), [], queued_jobs=1).create == 3  # min_idle still holds


def test_scale_down_deletes_the_oldest_idle_runners() -> None:
    views = [view("a", S.IDLE, age=10), view("b", S.IDLE, age=30), view("c", S.IDLE, age=20), view("d", S.BUSY)]
    plan = plan_pool(pool(min_idle=1), views)
    assert plan.delete == (
        Deletion("b", R.SCALE_DOWN, "vm-b", gh("b").id, scope=SCOPE),
        Deletion("c", R.SCALE_DOWN, "vm-c", gh("c").id, scope=SCOPE),
    )
    assert (plan.desired, plan.alive, plan.create) == (2, 2, 0)


def test_scale_down_never_touches_busy_or_booting_runners() -> None:
    plan = plan_pool(pool(min_idle=0), views_of(S.BUSY, S.BUSY, S.BOOTING, S.BOOTING))
    assert plan.empty and plan.alive == 4 and plan.desired == 2


def test_over_max_runners_with_busy_runners_creates_nothing() -> None:
    plan = plan_pool(pool(min_idle=1, max_runners=3), views_of(S.BUSY, S.BUSY, S.BUSY, S.BUSY, S.IDLE))
    assert names(plan.delete, R.SCALE_DOWN) == ["r4"]
    assert plan.create == 0 and plan.desired == 3 and plan.alive == 4


def test_inconsistent_busy_view_is_never_deleted_in_present() -> None:
    # A stale state with GitHub's busy flag set: busy wins, even with force.
    views = [view("a", S.EXPIRED, busy=True), view("b", S.FINISHED, busy=True)]
    for force in (False, True):
        plan = plan_pool(pool(), views, force=force)
        assert plan.empty and plan.alive == 2


def test_deletion_ids_without_github_record_come_from_vm_metadata() -> None:
    # A VM from before scopes were recorded: its runner may be where this run did not list.
    finished = RunnerView("f", S.FINISHED, vm("f", "SHUTOFF", runner_id=77, scope=None), None, 500.0, SCOPE)
    orphan = RunnerView("o", S.ORPHAN, None, gh("o", runner_id=5), 0.0, SCOPE)
    plan = plan_pool(pool(), [orphan, finished])
    assert plan.delete == (
        Deletion("f", R.FINISHED, "vm-f", 77, scope=SCOPE),
        Deletion("o", R.ORPHAN, None, 5, scope=SCOPE),
    )


def test_plan_is_deterministic() -> None:
    views = [view(f"r{i}", s, age=float(i % 3)) for i, s in enumerate([S.IDLE] * 6 + [S.FINISHED, S.BUSY] * 2)]
    expected = plan_pool(pool(min_idle=2), views)
    for seed in range(5):
        shuffled = views[:]
        random.Random(seed).shuffle(shuffled)
        assert plan_pool(pool(min_idle=2), shuffled) == expected
    assert names(expected.delete) == sorted(names(expected.delete))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        plan_pool(pool(), [], mode="gone")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        plan_pool(pool(), [], queued_jobs=-1)


def test_deleted_by_reason() -> None:
    plan = plan_pool(pool(min_idle=0), views_of(S.FINISHED, S.FINISHED, S.IDLE, S.ORPHAN))
    assert deleted_by_reason(plan) == {"finished": 2, "orphan": 1, "scale_down": 1}


# --- absent -----------------------------------------------------------------------


def test_absent_deletes_all_but_busy_and_defers_busy() -> None:
    plan = plan_pool(pool(min_idle=2), views_of(S.IDLE, S.BOOTING, S.BUSY, S.FAILED), mode="absent")
    assert [(d.name, d.reason, d.busy) for d in plan.delete] == [
        ("r0", R.ABSENT, False),
        ("r1", R.ABSENT, False),
        ("r3", R.FAILED, False),
    ]
    assert plan.deferred == ("r2",)
    assert (plan.desired, plan.alive, plan.create) == (0, 1, 0)


def test_absent_with_force_deletes_busy_runners_too() -> None:
    plan = plan_pool(pool(), views_of(S.IDLE, S.BUSY), mode="absent", force=True)
    assert [(d.name, d.reason, d.busy) for d in plan.delete] == [("r0", R.ABSENT, False), ("r1", R.ABSENT, True)]
    assert plan.deferred == () and plan.alive == 0


def test_absent_of_an_empty_pool_is_empty() -> None:
    assert plan_pool(pool(min_idle=3), [], mode="absent").empty


# --- flushed ----------------------------------------------------------------------


def test_flushed_replaces_idle_and_booting_and_defers_busy() -> None:
    plan = plan_pool(pool(min_idle=2), views_of(S.IDLE, S.BOOTING, S.BUSY, S.LOST), mode="flushed")
    assert [(d.name, d.reason) for d in plan.delete] == [("r0", R.FLUSH), ("r1", R.FLUSH), ("r3", R.LOST)]
    assert plan.deferred == ("r2",)
    assert (plan.desired, plan.alive, plan.create) == (3, 1, 2)


def test_flushed_with_force_replaces_busy_runners_too() -> None:
    plan = plan_pool(pool(min_idle=1), views_of(S.BUSY, S.IDLE), mode="flushed", force=True)
    assert [(d.name, d.reason, d.busy) for d in plan.delete] == [("r0", R.FLUSH, True), ("r1", R.FLUSH, False)]
    assert (plan.desired, plan.alive, plan.create) == (1, 0, 1)


# --- properties -------------------------------------------------------------------

ALL_STATES = tuple(RunnerState)


@st.composite
def pools(draw: st.DrawFn) -> PoolSpec:
    max_runners = draw(st.integers(1, 8))
    return pool(min_idle=draw(st.integers(0, max_runners)), max_runners=max_runners)


@st.composite
def view_lists(draw: st.DrawFn, states: t.Sequence[RunnerState] = ALL_STATES) -> t.List[RunnerView]:
    views = []
    for i in range(draw(st.integers(0, 12))):
        state = draw(st.sampled_from(states))
        # Mostly consistent with the state; sometimes a stale view carries GitHub's busy flag.
        busy = state == S.BUSY or (state not in ALIVE_STATES and draw(st.integers(0, 9)) == 0)
        views.append(
            view(
                f"r{i:02d}",
                state,
                age=draw(st.floats(0, 10**5)),
                busy=busy,
                with_vm=draw(st.integers(0, 4)) > 0,
            )
        )
    return views


def apply(plan: Plan, views: t.Sequence[RunnerView]) -> t.List[RunnerView]:
    """The pool after the plan is carried out: deletions gone, creations booting."""
    gone = {(d.name, d.vm_id) for d in plan.delete}
    after = [v for v in views if (v.name, v.vm.id if v.vm else None) not in gone]
    after += [view(f"new{i}", S.BOOTING, age=0.0) for i in range(plan.create)]
    return after


def alive_after(plan: Plan) -> int:
    return plan.alive + plan.create


@settings(max_examples=400, deadline=None)
@given(pools(), view_lists(), st.sampled_from(MODES), st.integers(0, 12))
def test_never_deletes_a_busy_runner_unless_forced(
    spec: PoolSpec, views: t.List[RunnerView], mode: Mode, queued: int
) -> None:
    plan = plan_pool(spec, views, mode=mode, queued_jobs=queued)
    busy = {v.name for v in views if v.busy or v.state == S.BUSY}
    assert not busy & set(names(plan.delete))
    assert all(not d.busy for d in plan.delete)
    if mode != "present":
        assert set(plan.deferred) == busy
    forced = plan_pool(spec, views, mode=mode, queued_jobs=queued, force=True)
    if mode == "present":
        assert forced == plan
    else:
        assert {d.name for d in forced.delete if d.busy} == busy and forced.deferred == ()


@settings(max_examples=400, deadline=None)
@given(pools(), view_lists(), st.sampled_from(MODES), st.integers(0, 12), st.booleans())
def test_never_plans_more_than_max_runners_alive(
    spec: PoolSpec, views: t.List[RunnerView], mode: Mode, queued: int, force: bool
) -> None:
    plan = plan_pool(spec, views, mode=mode, queued_jobs=queued, force=force)
    if plan.create:
        assert alive_after(plan) <= spec.max_runners
    # Only runners the plan may not delete (busy, booting) can keep the pool above its maximum.
    untouchable = sum(1 for v in views if v.busy or v.state in (S.BUSY, S.BOOTING))
    assert alive_after(plan) <= max(spec.max_runners, untouchable)
    assert 0 <= plan.desired <= spec.max_runners


@settings(max_examples=400, deadline=None)
@given(pools(), view_lists(), st.sampled_from(MODES), st.integers(0, 12), st.booleans())
def test_every_deletion_has_a_reason_and_ids(
    spec: PoolSpec, views: t.List[RunnerView], mode: Mode, queued: int, force: bool
) -> None:
    plan = plan_pool(spec, views, mode=mode, queued_jobs=queued, force=force)
    for deletion in plan.delete:
        assert isinstance(deletion.reason, DeleteReason)
        assert deletion.vm_id is not None or deletion.runner_id is not None
    assert len({(d.name, d.vm_id) for d in plan.delete}) == len(plan.delete)
    # Every stale runner that is not busy goes, in every mode.
    stale = {v.name for v in views if v.state not in ALIVE_STATES and not v.busy}
    assert stale <= set(names(plan.delete))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_pool_at_its_desired_size_plans_nothing(data: st.DataObject) -> None:
    views = data.draw(view_lists(states=sorted(ALIVE_STATES)))
    kept = [v for v in views if not v.busy or v.state == S.BUSY]
    busy = sum(1 for v in kept if v.state == S.BUSY)
    spare = len(kept) - busy
    spec = pool(min_idle=spare, max_runners=max(1, len(kept)))
    queued = data.draw(st.integers(0, spare))
    assert plan_pool(spec, kept, queued_jobs=queued).empty


@settings(max_examples=400, deadline=None)
@given(pools(), view_lists(), st.integers(0, 12))
def test_replanning_after_the_plan_is_carried_out_plans_nothing(
    spec: PoolSpec, views: t.List[RunnerView], queued: int
) -> None:
    plan = plan_pool(spec, views, queued_jobs=queued)
    after = apply(plan, views)
    replan = plan_pool(spec, after, queued_jobs=queued)
    assert replan.empty, replan
    assert replan.alive == alive_after(plan)


STATUSES = ["BUILD", "ACTIVE", "SHUTOFF", "ERROR", "DELETED"]
RUNNER_NAMES = [f"ci-small-{i:012x}" for i in range(10)]


@st.composite
def observed(draw: st.DrawFn) -> t.Tuple[t.List[VmInfo], t.List[GithubRunner], RunnerHistory]:
    vm_names = draw(st.lists(st.sampled_from(RUNNER_NAMES), max_size=10, unique=True))
    vms = [vm(name, draw(st.sampled_from(STATUSES)), draw(st.floats(0, 2 * 10**5))) for name in vm_names]
    runner_names = draw(st.lists(st.sampled_from(RUNNER_NAMES), max_size=10, unique=True))
    runners = [gh(name, online=draw(st.booleans()), busy=draw(st.booleans())) for name in runner_names]
    return vms, runners, RunnerHistory(first_seen={n: NOW for n in runner_names if draw(st.booleans())})


@settings(max_examples=300, deadline=None)
@given(pools(), observed(), st.sampled_from(MODES), st.integers(0, 12))
def test_derived_views_never_lead_to_deleting_busy_runners(
    spec: PoolSpec, world: t.Tuple[t.List[VmInfo], t.List[GithubRunner], RunnerHistory], mode: Mode, queued: int
) -> None:
    vms, runners, hist = world
    views = derive_states(vms, runners, NOW, TIMING, hist)
    plan = plan_pool(spec, views, mode=mode, queued_jobs=queued)
    busy = {r.name for r in runners if r.busy}
    assert not busy & set(names(plan.delete))
    if plan.create:
        assert alive_after(plan) <= spec.max_runners
    if mode == "present":
        assert plan_pool(spec, apply(plan, views), queued_jobs=queued).empty


def test_only_running_vms_without_listed_runner_need_confirmation() -> None:
    running = RunnerView("r1", RunnerState.FINISHED, vm("r1", "ACTIVE", runner_id=7), None, 600.0, SCOPE)
    off = RunnerView("r2", RunnerState.FINISHED, vm("r2", "SHUTOFF", runner_id=8), None, 600.0, SCOPE)
    plan = plan_pool(pool(min_idle=0), [running, off])
    confirm = {d.name: d.confirm_gone for d in plan.delete}
    assert confirm == {"r1": True, "r2": False}
    assert all(d.reason is DeleteReason.FINISHED for d in plan.delete)


# Nova statuses: failed, ended, and every other one (the VM may still run its runner).
ENDED = ["SHUTOFF", "DELETED", "SOFT_DELETED"]
MAY_RUN = [
    "ACTIVE",
    "BUILD",
    "MIGRATING",
    "REBOOT",
    "HARD_REBOOT",
    "PAUSED",
    "SUSPENDED",
    "RESIZE",
    "VERIFY_RESIZE",
    "REVERT_RESIZE",
    "REBUILD",
    "RESCUE",
    "PASSWORD",
    "SHELVED",
    "SHELVED_OFFLOADED",
    "UNKNOWN",
]


@pytest.mark.parametrize("status", MAY_RUN)
def test_vm_that_may_run_is_confirmed_with_github_before_deletion(status: str) -> None:
    # Its runner is not listed: maybe it is gone, maybe the listing missed it.
    [derived] = derive_states([vm("r1", status, age=600, runner_id=7)], [], NOW, TIMING, scope=SCOPE)
    assert derived.state is S.FINISHED
    for mode in MODES:
        (deletion,) = plan_pool(pool(min_idle=0), [derived], mode=mode).delete
        assert deletion.confirm_gone, (status, mode)
        assert (deletion.runner_id, deletion.scope) == (7, SCOPE)


@pytest.mark.parametrize("status", ["ERROR", *ENDED])
def test_failed_or_ended_vm_is_deleted_after_github_deletes_its_listed_runner(status: str) -> None:
    listed = gh("r1", runner_id=7)
    [derived] = derive_states([vm("r1", status, age=600, runner_id=7)], [listed], NOW, TIMING, scope=SCOPE)
    assert derived.state is (S.FAILED if status == "ERROR" else S.FINISHED)
    (deletion,) = plan_pool(pool(min_idle=0), [derived]).delete
    assert not deletion.confirm_gone and deletion.runner_id == 7


@pytest.mark.parametrize("status", ["ERROR", *ENDED])
def test_failed_or_ended_vm_whose_runner_is_not_listed_is_deleted_without_a_github_call(status: str) -> None:
    # GitHub removed the ephemeral runner after its job: a DELETE would only cost a write and get a 404.
    [derived] = derive_states([vm("r1", status, age=600, runner_id=7)], [], NOW, TIMING, scope=SCOPE)
    (deletion,) = plan_pool(pool(min_idle=0), [derived]).delete
    assert deletion.vm_id == "vm-r1" and deletion.runner_id is None and not deletion.confirm_gone


@pytest.mark.parametrize("status", ["ERROR", *ENDED])
def test_failed_or_ended_vm_without_a_recorded_scope_still_asks_github(status: str) -> None:
    # Its runner may be registered in another scope than the pool's, which this run did not list.
    old = vm("r1", status, age=600, runner_id=7, scope=None)
    [derived] = derive_states([old], [], NOW, TIMING, scope=SCOPE)
    (deletion,) = plan_pool(pool(min_idle=0), [derived]).delete
    assert deletion.runner_id == 7


def test_one_set_of_running_statuses_for_state_and_plan() -> None:
    for status in MAY_RUN + ENDED + ["ERROR"]:
        young = vm("r1", status, age=1, runner_id=7)
        [derived] = derive_states([young], [], NOW, TIMING, scope=SCOPE)
        # Booting (kept) in the state table exactly when the plan would ask GitHub first.
        (deletion,) = plan_pool(pool(min_idle=0), [derived], mode="absent").delete
        assert (derived.state is S.BOOTING) == deletion.confirm_gone == young.may_run, status


def test_deletions_carry_the_scope_the_runner_is_registered_in() -> None:
    org = Scope(ScopeKind.ORGANIZATION, "octo")
    moved = pool(repository=None, organization="octo", min_idle=0)
    views = derive_states(
        [vm("r1", "SHUTOFF", age=600, runner_id=7, scope=SCOPE), vm("r2", "SHUTOFF", age=600, runner_id=8, scope=org)],
        [],
        NOW,
        TIMING,
        scope=org,
    )
    assert {d.name: d.scope for d in plan_pool(moved, views).delete} == {"r1": SCOPE, "r2": org}


# VMs from before scopes were recorded ---------------------------------------------


def legacy(status: str = "ACTIVE", age: float = 600.0) -> RunnerView:
    """A VM without recorded scope whose runner the pool's scope does not list."""
    [derived] = derive_states([vm("r1", status, age=age, runner_id=7, scope=None)], [], NOW, TIMING, scope=SCOPE)
    return derived


@pytest.mark.parametrize("mode", MODES)
def test_unlisted_runner_of_a_vm_without_recorded_scope_is_kept_until_max_lifetime(mode: Mode) -> None:
    plan = plan_pool(pool(min_idle=0), [legacy()], mode=mode)
    assert plan.delete == () and plan.deferred == ("r1",)
    assert plan.alive == 1  # still holds a VM: counts towards max_runners


def test_vm_without_recorded_scope_goes_at_max_lifetime_or_with_force() -> None:
    (old,) = plan_pool(pool(min_idle=0), [legacy(age=TIMING.max_lifetime)]).delete
    assert old.confirm_gone and old.scope == SCOPE
    (forced,) = plan_pool(pool(min_idle=0), [legacy()], mode="absent", force=True).delete
    assert forced.confirm_gone and forced.scope == SCOPE


def test_ended_vm_without_recorded_scope_is_deleted_as_before() -> None:
    (deletion,) = plan_pool(pool(min_idle=0), [legacy("SHUTOFF")]).delete
    assert deletion.reason is R.FINISHED and deletion.scope == SCOPE


# Pools no longer configured ------------------------------------------------------------


def test_unlisted_pool_is_emptied_as_absent_with_busy_and_unaskable_runners_deferred() -> None:
    idle = view("a", S.IDLE)
    busy = view("b", S.BUSY)
    # No recorded scope and no pool scope: GitHub cannot be asked about its runner.
    unaskable = RunnerView("c", S.FINISHED, vm("c", "SHUTOFF", age=600, runner_id=9, scope=None), None, 600.0)
    plan = plan_unlisted_pool("gone", [idle, busy, unaskable], TIMING)
    assert [(d.name, d.reason, d.scope) for d in plan.delete] == [("a", R.ABSENT, SCOPE)]
    assert plan.deferred == ("b", "c")
    assert (plan.pool, plan.desired, plan.create) == ("gone", 0, 0)
    forced = plan_unlisted_pool("gone", [idle, busy, unaskable], TIMING, force=True)
    assert names(forced.delete) == ["a", "b"] and forced.deferred == ("c",)


def test_running_vm_without_runner_id_is_kept_until_max_lifetime() -> None:
    # Nothing to ask GitHub about: one listing's word is not enough.
    [young] = derive_states([vm("r1", "ACTIVE", age=600)], [], NOW, TIMING, scope=SCOPE)
    assert young.state is S.FINISHED
    plan = plan_pool(pool(min_idle=0), [young])
    assert plan.delete == () and plan.deferred == ("r1",)
    [old] = derive_states([vm("r1", "ACTIVE", age=TIMING.max_lifetime)], [], NOW, TIMING, scope=SCOPE)
    assert names(plan_pool(pool(min_idle=0), [old]).delete) == ["r1"]
    assert names(plan_pool(pool(min_idle=0), [young], mode="absent", force=True).delete) == ["r1"]
