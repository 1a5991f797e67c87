# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a reconcile reports: per-pool results, the diff, runners as plain data.

Plain data only (no SDK objects, no secrets), shaped for module results.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._backoff import CreationBackoff
from ansible_collections.selfhosted.github_runners.plugins.module_utils._identity import format_scope, format_timestamp
from ansible_collections.selfhosted.github_runners.plugins.module_utils._manager import ExecutionResult
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import (
    Plan,
    QueuedJobScan,
    RunnerState,
    RunnerView,
    Scope,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._ratelimit import GithubRate


@dataclasses.dataclass
class PoolReport:
    pool: str
    plan: Plan
    views: t.List[RunnerView]
    execution: ExecutionResult
    duration: float
    check_mode: bool = False
    backoff: CreationBackoff = dataclasses.field(default_factory=CreationBackoff)
    now: t.Optional[datetime.datetime] = None  # when the pool was reconciled
    # VMs whose runner is registered in another scope than the pool's (the pool moved).
    scope_changed: t.List[str] = dataclasses.field(default_factory=list)
    # A pool no longer configured, emptied by prune_unlisted_pools.
    unlisted: bool = False
    # GitHub's rate limit asked for no change before then: creations and runner deletions wait.
    github_not_before: t.Optional[datetime.datetime] = None
    # False when the pool was not reconciled at all (a listing it needs failed): its error says why.
    reconciled: bool = True

    @property
    def failed(self) -> bool:
        """Whether something went wrong for this pool, or its run was stopped (the task then fails, naming it)."""
        return bool(self.execution.errors) or self.stopped is not None

    @property
    def stopped(self) -> t.Optional[str]:
        """Why creations or deletions of the plan were not started (e.g. ``stopped by SIGINT``), or None."""
        return self.execution.stopped

    def left(self) -> t.Dict[str, t.Any]:
        """What the plan wanted but the run did not do: creations not made, deletions not made (their names)."""
        execution = self.execution
        done = {name for names in execution.deleted.values() for name in names}
        done.update(execution.skipped_busy, execution.undeleted)
        # As the executor does: a deletion that did not happen leaves its runner, so one creation fewer.
        creations = self.plan.create - len(execution.skipped_busy) - len(execution.undeleted)
        tried = len(execution.created) + len(execution.create_failures)
        return {
            "create": max(0, creations - tried),
            "delete": sorted(d.name for d in self.plan.delete if d.name not in done),
        }

    def stopped_text(self) -> str:
        """What a stopped pool did and left, e.g. ``pool small: created 2, deleted 0; left 4 creations, 0 deletions``."""
        left = self.left()
        deleted = sum(len(names) for names in self.execution.deleted.values())
        return (
            f"pool {self.pool}: created {len(self.execution.created)}, deleted {deleted}; left for the next run:"
            f" {left['create']} creations, {len(left['delete'])} deletions"
        )

    @property
    def backing_off(self) -> bool:
        """Whether the pool's creations wait (the plan then creates nothing)."""
        return self.now is not None and self.backoff.active(self.now)

    def backoff_info(self) -> t.Dict[str, t.Any]:
        backoff = self.backoff
        return {
            "active": self.backing_off,
            "backoff_until": _timestamp(backoff.until),
            "consecutive_failures": backoff.failures,
            "last_fault": backoff.last_fault,
            "fault_kind": backoff.fault_kind,
        }

    def warnings(self) -> t.List[str]:
        found = list(self.plan.warnings)
        if self.backing_off and self.backoff.until is not None:
            found.append(
                f"pool {self.pool}: creations back off until {format_timestamp(self.backoff.until)} after"
                f" {self.backoff.failures} failed creations in a row ({self.backoff.fault_kind}): {self.backoff.last_fault}"
            )
        if self.github_not_before is not None:
            found.append(
                f"pool {self.pool}: GitHub's rate limit holds back creations and runner deletions until "
                f"{format_timestamp(self.github_not_before)}"
            )
        return found

    @property
    def changed(self) -> bool:
        """Whether runners were created or deleted; in check mode, whether they would be."""
        return not self.plan.empty if self.check_mode else self.execution.changed

    def states(self) -> t.Dict[str, int]:
        return state_counts(self.views)

    def summary(self) -> str:
        """One line for people, e.g. ``small: idle 2, busy 1; created 1, deleted 2 (finished 2)``.

        In check mode nothing was created or deleted: it tells what the plan would do.
        """
        if not self.reconciled:
            return f"{self.pool}: not reconciled: {'; '.join(self.execution.errors)}"
        states = states_text(self.states())
        if self.check_mode:
            created, verb = self.plan.create, ("would create", "would delete")
            reasons = collections.Counter(d.reason.value for d in self.plan.delete)
        else:
            created, verb = len(self.execution.created), ("created", "deleted")
            reasons = collections.Counter({r: len(names) for r, names in self.execution.deleted.items() if names})
        deleted = sum(reasons.values())
        why = f" ({', '.join(f'{reason} {n}' for reason, n in sorted(reasons.items()))})" if deleted else ""
        name = f"{self.pool} (not in pools)" if self.unlisted else self.pool
        line = f"{name}: {states}; {verb[0]} {created}, {verb[1]} {deleted}{why}"
        busy = {v.name for v in self.views if v.busy or v.state is RunnerState.BUSY}
        deferred_busy = sum(1 for name in self.plan.deferred if name in busy)
        if deferred_busy:
            line += f"; busy runners left for a later run: {deferred_busy}"
        if len(self.plan.deferred) > deferred_busy:
            line += f"; VMs kept until GitHub can tell their runner is gone: {len(self.plan.deferred) - deferred_busy}"
        if self.scope_changed:
            line += f"; registered in another scope than the pool's: {len(self.scope_changed)}"
        if self.plan.outdated:
            line += f"; outdated (an older pool spec): {len(self.plan.outdated)}"
        if self.plan.limited:
            line += f"; {self.plan.limited} more left for later runs (max_create_per_run)"
        if self.plan.held and self.backoff.until is not None:
            line += f"; {self.plan.held} held back until {format_timestamp(self.backoff.until)} (creation backoff)"
        if self.github_not_before is not None:
            line += f"; no GitHub change before {format_timestamp(self.github_not_before)} (rate limit)"
        if self.stopped is not None:
            left = self.left()
            line += f"; {self.stopped}: {left['create']} creations and {len(left['delete'])} deletions left"
        return line

    def as_dict(self) -> t.Dict[str, t.Any]:
        plan = self.plan
        return {
            "name": self.pool,
            "unlisted": self.unlisted,
            "changed": self.changed,
            "failed": self.failed,
            "reconciled": self.reconciled,
            "summary": self.summary(),
            "states": self.states(),
            "plan": {
                "desired": plan.desired,
                "alive": plan.alive,
                "create": plan.create,
                "delete": [{"name": d.name, "reason": d.reason.value, "busy": d.busy} for d in plan.delete],
                "deferred": list(plan.deferred),
                "held": plan.held,
                "limited": plan.limited,
                "outdated": len(plan.outdated),
            },
            "backoff": self.backoff_info(),
            "created": sorted(self.execution.created),
            "deleted": {reason: sorted(names) for reason, names in self.execution.deleted.items()},
            "skipped_busy": sorted(self.execution.skipped_busy),
            "scope_changed": sorted(self.scope_changed),
            "outdated": list(plan.outdated),
            "errors": list(self.execution.errors),
            "duration": round(self.duration, 3),
            "github_not_before": _timestamp(self.github_not_before),
            "stopped": self.stopped,
            "left": self.left(),
        }


@dataclasses.dataclass
class ReconcileReport:
    pools: t.List[PoolReport]
    api_calls: t.Dict[str, int]
    check_mode: bool = False
    # VMs per pool that is not configured (pruned or not).
    unmanaged: t.Dict[str, int] = dataclasses.field(default_factory=dict)
    # Things the user should know that are not errors (e.g. an unlisted pool another reconcile holds).
    notes: t.List[str] = dataclasses.field(default_factory=list)
    # GitHub's budget after the run, the time this run waited on the write bucket, a pending hold.
    github_rate: GithubRate = dataclasses.field(default_factory=GithubRate)
    queued_jobs: t.Optional[QueuedJobScan] = None  # with count_queued_jobs
    job_queue: t.Optional[t.Dict[str, t.Any]] = None  # with a job queue: its counts and backfills per pool

    @property
    def changed(self) -> bool:
        return any(p.changed for p in self.pools)

    @property
    def errors(self) -> t.List[str]:
        return [e for p in self.pools for e in p.execution.errors]

    @property
    def failed_pools(self) -> t.List[str]:
        return [p.pool for p in self.pools if p.failed]

    def failure_message(self) -> t.Optional[str]:
        """The task's msg when a pool failed: which pools, then every error; None when none failed."""
        failed = self.failed_pools
        if not failed:
            return None
        stopped = [p for p in self.pools if p.stopped is not None]
        if stopped:
            # Every stopped pool says what it did and left; errors of the run follow.
            return (
                f"{stopped[0].stopped}: no creation or deletion was started after it, those under way were finished,"
                f" the pools' states saved and their locks released; {'; '.join(p.stopped_text() for p in stopped)}"
                + "".join(f"; {error}" for error in self.errors)
            )
        reconciled = sum(1 for p in self.pools if p.reconciled and not p.failed)
        return (
            f"{len(failed)} of {len(self.pools)} pools failed ({', '.join(failed)}); {reconciled} reconciled without"
            f" error: {'; '.join(self.errors)}"
        )

    @property
    def warnings(self) -> t.List[str]:
        """Backing-off and rate-limited pools, VMs of pools that are not configured and were not pruned,
        the notes, and a count of queued jobs that stopped short."""
        pruned = {p.pool for p in self.pools if p.unlisted}
        left = {pool: count for pool, count in self.unmanaged.items() if pool not in pruned}
        found = [w for p in self.pools for w in p.warnings()] + unmanaged_warnings(left) + list(self.notes)
        scan = self.queued_jobs
        if scan is not None and scan.stopped_by is not None:
            skipped = (
                "the repositories" if scan.skipped_repositories is None else f"{scan.skipped_repositories} repositories"
            )
            found.append(
                f"count_queued_jobs: {skipped} not looked at ({scan.stopped_by} reached after {scan.requests} requests);"
                " pools are sized for the jobs found"
            )
        return found

    @property
    def limited(self) -> t.List[str]:
        """Pools whose creations max_create_per_run cut short: they reach their size only in later runs."""
        return [p.pool for p in self.pools if p.plan.limited]

    @property
    def held(self) -> t.List[str]:
        """Pools that need runners but create none while their creations back off or GitHub holds them back."""
        return [p.pool for p in self.pools if p.plan.held]

    def diff(self) -> t.Dict[str, t.Any]:
        """Runners (name: state) per pool before and after; in check mode, after as planned."""
        before: t.Dict[str, t.Dict[str, str]] = {}
        after: t.Dict[str, t.Dict[str, str]] = {}
        for report in self.pools:
            runners = {v.name: v.state.value + (" (outdated)" if v.outdated else "") for v in report.views}
            before[report.pool] = runners
            if self.check_mode:
                gone = {d.name for d in report.plan.delete}
                new = [f"(new runner {i + 1})" for i in range(report.plan.create)]
            else:
                gone = {name for names in report.execution.deleted.values() for name in names}
                new = list(report.execution.created)
            remaining = {name: state for name, state in runners.items() if name not in gone}
            after[report.pool] = {**remaining, **{name: "booting" for name in new}}
        return {"before": before, "after": after}

    def as_dict(self) -> t.Dict[str, t.Any]:
        result: t.Dict[str, t.Any] = {
            "pools": [p.as_dict() for p in self.pools],
            "unmanaged": dict(self.unmanaged),
            "api_calls": dict(self.api_calls),
            "github_rate": {
                "remaining": self.github_rate.remaining,
                "write_wait": round(self.github_rate.write_wait, 3),
                "not_before": _timestamp(self.github_rate.not_before),
            },
        }
        scan = self.queued_jobs
        if scan is not None:
            result["queued_jobs"] = {
                "found": len(scan.jobs),
                "requests": scan.requests,
                "repositories": scan.repositories,
                "skipped_repositories": scan.skipped_repositories,
                "stopped_by": scan.stopped_by,
            }
        if self.job_queue is not None:
            result["job_queue"] = self.job_queue
        return result


def _timestamp(moment: t.Optional[datetime.datetime]) -> t.Optional[str]:
    return None if moment is None else format_timestamp(moment)


def runner_info(view: RunnerView) -> t.Dict[str, t.Any]:
    """One runner as plain data (no SDK objects, no secrets)."""
    vm, gh = view.vm, view.github
    return {
        "name": view.name,
        "state": view.state.value,
        "age": round(view.age, 1),
        "vm_id": vm.id if vm else None,
        "vm_status": vm.status if vm else None,
        "vm_fault": vm.fault if vm else None,
        "runner_id": gh.id if gh else None,
        "scope": format_scope(view.scope) if view.scope is not None else None,
        "github_status": ("online" if gh.online else "offline") if gh else None,
        "busy": view.busy,
        "labels": list(gh.labels) if gh else None,
        "created_at": format_timestamp(vm.created_at) if vm else None,
        "spec": vm.spec if vm else None,
        "flavor": vm.flavor if vm else None,
        "image": vm.image if vm else None,
        "job_id": vm.job_id if vm else None,
        "outdated": view.outdated,
    }


def state_counts(views: t.Iterable[RunnerView]) -> t.Dict[str, int]:
    """Runners per state, every state present (zeros included) so results keep one shape."""
    counts = collections.Counter(v.state.value for v in views)
    return {state.value: counts.get(state.value, 0) for state in RunnerState}


def states_text(states: t.Mapping[str, int]) -> str:
    """Runners per state for people, e.g. ``idle 2, busy 1``; the states without runners left out."""
    return ", ".join(f"{state} {count}" for state, count in states.items() if count) or "no runners"


def pool_info(pool: str, views: t.Sequence[RunnerView]) -> t.Dict[str, t.Any]:
    states = state_counts(views)
    return {
        "name": pool,
        "summary": f"{pool}: {states_text(states)}",
        "states": states,
        "runners": [runner_info(v) for v in sorted(views, key=lambda v: v.name)],
    }


def scope_changed(views: t.Iterable[RunnerView], scope: Scope) -> t.List[str]:
    """Names of the VMs that record another scope than the pool's `scope`."""
    return sorted(v.name for v in views if v.vm is not None and v.vm.scope is not None and v.vm.scope != scope)


def unmanaged_warnings(unmanaged: t.Mapping[str, int]) -> t.List[str]:
    """One warning per pool that has VMs but is not configured."""
    return [
        f"pool {pool} is not in pools but has {count} VM(s) of this controller_id: they keep running (and costing)"
        " until the pool is listed with state=absent or the run sets prune_unlisted_pools=true"
        for pool, count in unmanaged.items()
    ]
