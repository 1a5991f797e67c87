# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan of one reconcile of one pool: a pure function of the pool and its runner views.

Rules:

- A busy runner (GitHub's busy flag, or a view in state ``busy``) is never planned
  for deletion, except by ``absent``/``flushed`` with ``force``.
- ``present``: every failed/lost/finished/orphan/expired runner is deleted with its
  state as reason; desired = min(max_runners, busy + max(min_idle, queued_jobs));
  missing runners are created, surplus idle runners are scaled down, oldest first:
  they are the closest to max_lifetime, and the younger ones (maybe built from a
  newer image) have the most useful life left.
- ``absent``: every runner that is not busy is deleted (stale ones with their state
  as reason, the others with ``absent``); busy ones are deferred to a later run.
- ``flushed``: stale runners go as in ``present``; idle and booting runners are
  replaced (reason ``flush``: a booting runner may come from the old image too);
  busy ones are deferred; replacements are created up to the ``present`` size.
- Drift (``present``): an idle runner whose VM records another spec hash than the
  pool's (`RunnerView.outdated`) is replaced (reason ``outdated``), at most
  ``max_replace_per_run`` per run and no more than the creations left under
  ``max_create_per_run`` can refill, so the pool does not shrink while it rolls over.
  Surplus idle runners are scaled down outdated ones first. Busy outdated runners
  are left alone: they end with their job (ephemeral), and booting ones are
  replaced once idle.
- Reactive runners (their VM records the job they were spawned for, `ghr_job_id`) are
  never scaled down or replaced as outdated while younger than ``bootstrap_timeout``:
  GitHub has yet to hand them their job, and the consumer's queue still counts it.
  Older idle ones (their job went elsewhere or was cancelled) are ordinary idle runners.
- Spawns in flight (`in_flight`: runners the consumer reserved room for whose VM no
  listing shows yet) count as alive, so neither side goes past ``max_runners``.
- Size guards: creations are capped at ``max_create_per_run`` (the rest are reported
  as `Plan.limited` and wait for later runs), and a ``min_idle`` above ``max_runners``
  is capped by it; both come with a warning in the plan.
- GitHub is asked about a runner only in the scope it is registered in
  (`Deletion.scope`). A VM that may still run, whose runner no listing showed, is
  deleted only once GitHub says that runner is gone. Where GitHub cannot say so, the
  VM is kept (deferred, counted as alive) in every mode: always when no scope is
  known (a pool no longer configured, VM from before scopes were recorded); until
  `max_lifetime`, or with ``force``, when the VM records no scope (its runner may be
  registered in a scope the pool had before, where a 404 proves nothing) or no
  runner id (nothing to ask about).
- A pool no longer configured (`plan_unlisted_pool`) is emptied as ``absent`` does.

Counting: `Plan.alive` is the runners left after the planned deletions, and
`create` fills up to `desired` from there, so the pool never holds more than
`max_runners` live runners once the plan is carried out. VMs being deleted may
still exist for a moment: the executor deletes before it creates when the pool
is at `max_runners`.
"""

from __future__ import annotations

import dataclasses
import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import PoolSpec
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import (
    DeleteReason,
    Deletion,
    Mode,
    Plan,
    PoolTiming,
    RunnerState,
    RunnerView,
)

MODES: t.Tuple[Mode, ...] = ("present", "absent", "flushed")

#: States whose runner is deleted in every mode, with the state as the reason.
STALE_REASONS: t.Mapping[RunnerState, DeleteReason] = {
    RunnerState.FAILED: DeleteReason.FAILED,
    RunnerState.LOST: DeleteReason.LOST,
    RunnerState.FINISHED: DeleteReason.FINISHED,
    RunnerState.ORPHAN: DeleteReason.ORPHAN,
    RunnerState.EXPIRED: DeleteReason.EXPIRED,
}


def plan_pool(
    pool: PoolSpec,
    views: t.Sequence[RunnerView],
    *,
    mode: Mode = "present",
    queued_jobs: int = 0,
    force: bool = False,
    in_flight: int = 0,
) -> Plan:
    """What to delete and how many runners to create; deterministic for the same input."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if queued_jobs < 0 or in_flight < 0:
        raise ValueError(f"queued_jobs and in_flight must be >= 0, got {queued_jobs} and {in_flight}")
    deletions, deferred, kept = _plan_deletions(views, mode, force, pool.timing)
    busy = sum(1 for view in kept if _is_busy(view))
    desired = 0 if mode == "absent" else min(pool.max_runners, busy + max(pool.min_idle, queued_jobs))
    if mode == "present":
        idle = [
            view
            for view in kept
            if view.state == RunnerState.IDLE and not _is_busy(view) and not _awaits_its_job(view, pool.timing)
        ]
        # Outdated ones first, then the oldest.
        idle.sort(key=lambda view: (not view.outdated, -view.age, view.name))
        surplus = max(0, len(kept) + in_flight - desired)
        for view in idle[:surplus]:
            deletions.append(_deletion(view, DeleteReason.SCALE_DOWN))
            kept.remove(view)
        room = pool.max_create_per_run - max(0, desired - len(kept) - in_flight)
        outdated = [view for view in idle[surplus:] if view.outdated]
        for view in outdated[: max(0, min(pool.max_replace_per_run, room))]:
            deletions.append(_deletion(view, DeleteReason.OUTDATED))
            kept.remove(view)
    plan = _plan(pool.name, desired, kept, deletions, deferred, in_flight)
    limited = max(0, plan.create - pool.max_create_per_run)
    return dataclasses.replace(
        plan,
        create=plan.create - limited,
        limited=limited,
        outdated=tuple(sorted(view.name for view in views if view.outdated)),
        warnings=_size_warnings(pool, mode, limited),
    )


def _size_warnings(pool: PoolSpec, mode: Mode, limited: int) -> t.Tuple[str, ...]:
    warnings: t.List[str] = []
    if mode != "absent" and pool.min_idle > pool.max_runners:
        warnings.append(
            f"pool {pool.name}: min_idle ({pool.min_idle}) is above max_runners ({pool.max_runners}):"
            f" the pool is capped at {pool.max_runners} runners"
        )
    if limited:
        warnings.append(
            f"pool {pool.name}: {limited} more runner(s) wanted than max_create_per_run"
            f" ({pool.max_create_per_run}) allows in one run: they are left for later runs"
        )
    return tuple(warnings)


def plan_unlisted_pool(name: str, views: t.Sequence[RunnerView], timing: PoolTiming, *, force: bool = False) -> Plan:
    """The plan for the VMs of a pool no longer configured: emptied as ``absent`` does."""
    deletions, deferred, kept = _plan_deletions(views, "absent", force, timing)
    return _plan(name, 0, kept, deletions, deferred)


def _plan_deletions(
    views: t.Sequence[RunnerView], mode: Mode, force: bool, timing: PoolTiming
) -> t.Tuple[t.List[Deletion], t.List[str], t.List[RunnerView]]:
    """Deletions, deferred names and the live runners kept, before any scale-down."""
    deletions: t.List[Deletion] = []
    deferred: t.List[str] = []
    kept: t.List[RunnerView] = []  # live runners left after the deletions
    replace_reason = {"absent": DeleteReason.ABSENT, "flushed": DeleteReason.FLUSH}.get(mode)
    for view in views:
        if _is_busy(view):
            if replace_reason is not None and force:
                deletions.append(_deletion(view, replace_reason, busy=True))
                continue
            if replace_reason is not None:
                deferred.append(view.name)
            kept.append(view)
        elif _unconfirmable(view, timing, forced=force and replace_reason is not None):
            deferred.append(view.name)
            kept.append(view)
        elif view.state in STALE_REASONS:
            deletions.append(_deletion(view, STALE_REASONS[view.state]))
        elif replace_reason is not None:
            deletions.append(_deletion(view, replace_reason))
        else:
            kept.append(view)
    return deletions, deferred, kept


def _plan(
    name: str,
    desired: int,
    kept: t.Sequence[RunnerView],
    deletions: t.Sequence[Deletion],
    deferred: t.Sequence[str],
    in_flight: int = 0,
) -> Plan:
    return Plan(
        pool=name,
        desired=desired,
        alive=len(kept) + in_flight,
        create=max(0, desired - len(kept) - in_flight),
        delete=tuple(sorted(deletions, key=lambda d: (d.name, d.vm_id or "", d.runner_id or 0))),
        deferred=tuple(sorted(deferred)),
    )


def deleted_by_reason(plan: Plan) -> t.Dict[str, int]:
    """Counts of the planned deletions per reason, e.g. ``{"finished": 2, "scale_down": 1}``."""
    counts: t.Dict[str, int] = {}
    for deletion in plan.delete:
        counts[deletion.reason.value] = counts.get(deletion.reason.value, 0) + 1
    return dict(sorted(counts.items()))


def _is_busy(view: RunnerView) -> bool:
    return view.busy or view.state == RunnerState.BUSY


def _awaits_its_job(view: RunnerView, timing: PoolTiming) -> bool:
    """A reactive runner young enough that GitHub may still hand it the job it was spawned for."""
    return view.vm is not None and view.vm.job_id is not None and view.age < timing.bootstrap_timeout


def _unconfirmable(view: RunnerView, timing: PoolTiming, *, forced: bool) -> bool:
    """Whether GitHub cannot confirm yet that this VM's runner is gone (see the module doc)."""
    vm = view.vm
    if vm is None or view.github is not None:
        return False
    if vm.runner_id is not None and view.scope is None:
        return True  # nowhere to ask
    if not vm.may_run or forced or view.age >= timing.max_lifetime:
        return False
    # Without a runner id there is nothing to ask; and a 404 from the pool's scope proves
    # nothing about a runner registered before scopes were recorded.
    return vm.runner_id is None or vm.scope is None


def _deletion(view: RunnerView, reason: DeleteReason, *, busy: bool = False) -> Deletion:
    # Without a listed GitHub runner, the VM metadata's runner id still lets the
    # executor ask GitHub first (404 = gone, 422 = busy) before deleting the VM.
    runner_id = view.github.id if view.github is not None else view.vm.runner_id if view.vm is not None else None
    if _listed_gone(view):
        runner_id = None  # nothing left on GitHub to delete: one write fewer per finished job
    unlisted_but_running = view.github is None and view.vm is not None and view.vm.may_run
    return Deletion(
        name=view.name,
        reason=reason,
        vm_id=view.vm.id if view.vm is not None else None,
        runner_id=runner_id,
        busy=busy,
        confirm_gone=unlisted_but_running and runner_id is not None,
        scope=view.scope,
    )


def _listed_gone(view: RunnerView) -> bool:
    """A VM that cannot run any more whose runner this run's listing of the VM's recorded scope does not show.

    GitHub removes an ephemeral runner after its job; the state table deletes such a VM only
    past registration_grace, when a new runner shows in the listing. A record that is still
    there after all (then listed) goes as an orphan runner.
    """
    vm = view.vm
    return view.github is None and vm is not None and not vm.may_run and vm.scope is not None


def without_github_changes(plan: Plan) -> Plan:
    """The plan less what needs a mutating GitHub call: no creation, no runner deletion.

    For a pool that GitHub's rate limit holds back: deletions of VMs alone (and those that
    only ask GitHub whether the runner is gone) go on; the rest waits for a later run.
    """
    kept = tuple(d for d in without_creations(plan).delete if d.runner_id is None or d.confirm_gone)
    return dataclasses.replace(without_creations(plan), delete=kept)


def without_creations(plan: Plan) -> Plan:
    """The plan less its creations (reported as `held`) and the replacements of outdated runners,
    which wait with them: an outdated runner is not deleted while nothing can replace it."""
    kept = tuple(d for d in plan.delete if d.reason is not DeleteReason.OUTDATED)
    replaced = len(plan.delete) - len(kept)
    return dataclasses.replace(plan, create=0, delete=kept, held=plan.held + max(0, plan.create - replaced))
