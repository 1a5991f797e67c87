# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One reconcile of a set of pools: lock, list once, derive, plan, execute, report.

API budget per steady-state run: one server listing per cloud and one runner
listing per GitHub scope, shared by all pools; nothing per runner unless a
runner is created or deleted.

VMs of pools that are no longer configured are counted (`unmanaged`) and, with
`prune_unlisted_pools`, emptied as ``absent`` would: their locks are taken after
the listing shows them, and a pool whose lock another reconcile holds is left alone.

Failures are kept to the pool they concern: a scope whose runner listing fails (a
renamed repository, an organization the token cannot see) fails the pools that need
that listing, and any error while one pool is carried out fails that pool only; the
others are reconciled. Only the server listing, which every pool needs, fails the run.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import functools
import random
import time
import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._backoff import (
    CreationBackoff,
    after_failures,
    hold_creations,
    observe_boots,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import PoolSpec
from ansible_collections.selfhosted.github_runners.plugins.module_utils._drift import spec_hash
from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import (
    GithubError,
    LockError,
    RunnerError,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._identity import owns_name, parse_timestamp
from ansible_collections.selfhosted.github_runners.plugins.module_utils._interrupt import StopRequest, guard_with
from ansible_collections.selfhosted.github_runners.plugins.module_utils._lock import Heartbeat, PoolLock
from ansible_collections.selfhosted.github_runners.plugins.module_utils._manager import (
    Clock,
    ExecutionResult,
    PlanExecutor,
    utcnow,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import (
    GithubRunner,
    Mode,
    Plan,
    PoolTiming,
    QueuedJob,
    QueuedJobScan,
    RunnerState,
    RunnerView,
    Scope,
    VmInfo,
    job_matches,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._planner import (
    plan_pool,
    plan_unlisted_pool,
    without_github_changes,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._ports import CloudPort, GithubPort
from ansible_collections.selfhosted.github_runners.plugins.module_utils._ratelimit import GithubRate
from ansible_collections.selfhosted.github_runners.plugins.module_utils._report import (
    PoolReport,
    ReconcileReport,
    scope_changed,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._state import (
    CENSUS_KEY,
    RunnerHistory,
    derive_states,
    in_flight_spawns,
    observe,
    record_created,
    without_census,
)

if t.TYPE_CHECKING:  # the reactive path (pymongo) only where a queue is configured
    from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.backlog import Backlog

LockFactory = t.Callable[[str], PoolLock]


@dataclasses.dataclass(frozen=True)
class ReconcileOptions:
    controller_id: str
    mode: Mode = "present"
    force: bool = False
    check_mode: bool = False
    # Ask GitHub for queued jobs and size pools for them (costs requests per repository and run) ...
    count_queued_jobs: bool = False
    # ... with at most this many requests per run, and none while fewer than the floor are left.
    queued_jobs_max_requests: int = 100
    queued_jobs_rate_limit_floor: int = 1000
    # Empty the pools that have VMs but are no longer configured, as `absent` would (busy ones deferred).
    prune_unlisted_pools: bool = False


#: Timing for the VMs of a pool no longer configured: its own settings are gone.
UNLISTED_POOL_TIMING = PoolTiming()


class Snapshot:
    """What the cloud and GitHub say about our runners, listed once per run.

    One server listing; one runner listing per scope needed, shared by the pools:
    the pools' scopes and the scopes recorded on their VMs (a pool moved to another
    scope keeps runners in the old one until they end). With `unlisted`, also the
    scopes recorded on the VMs of pools that are not configured.
    """

    def __init__(
        self,
        github: GithubPort,
        cloud: CloudPort,
        controller_id: str,
        pools: t.Sequence[PoolSpec],
        *,
        unlisted: bool = False,
    ) -> None:
        self.controller_id = controller_id
        self._configured = {pool.name for pool in pools}
        self._vms: t.Dict[str, t.List[VmInfo]] = collections.defaultdict(list)
        try:
            servers = cloud.list_servers(controller_id)
        except RunnerError as exc:
            # Every pool needs this listing: no pool can be reconciled without it.
            raise RunnerError(f"no pool was reconciled: the server listing failed: {exc}") from None
        for vm in servers:
            if owns_name(controller_id, vm.pool, vm.name):  # our tags are not enough: our name too
                self._vms[vm.pool].append(vm)
        listed = set(self._vms) if unlisted else self._configured
        scopes = [pool.scope for pool in pools]
        scopes.extend(vm.scope for name in sorted(listed) for vm in self._vms.get(name, ()) if vm.scope is not None)
        self._runners: t.Dict[Scope, t.List[GithubRunner]] = {}
        # Scopes whose listing failed, with why: the pools that need them are not reconciled.
        self.failed: t.Dict[Scope, str] = {}
        for scope in scopes:
            if scope in self._runners or scope in self.failed:
                continue
            try:
                self._runners[scope] = [dataclasses.replace(r, scope=scope) for r in github.list_runners(scope)]
            except RunnerError as exc:
                self.failed[scope] = listing_failure(scope, exc)

    def vms(self, pool: str) -> t.List[VmInfo]:
        return list(self._vms.get(pool, []))

    def _scopes(self, pool: str, scope: t.Optional[Scope]) -> t.List[Scope]:
        """The pool's scope and the scopes recorded on its VMs, each once."""
        scopes = ([scope] if scope is not None else []) + [vm.scope for vm in self.vms(pool) if vm.scope is not None]
        return list(dict.fromkeys(scopes))

    def runners(self, pool: str, scope: t.Optional[Scope]) -> t.List[GithubRunner]:
        """The pool's runners in `scope` (the pool's) and in the scopes recorded on its VMs."""
        return [
            runner
            for listed in self._scopes(pool, scope)
            for runner in self._runners.get(listed, [])
            if owns_name(self.controller_id, pool, runner.name)
        ]

    def failure(self, pool: str, scope: t.Optional[Scope]) -> t.Optional[str]:
        """Why the pool cannot be reconciled (a listing it needs failed), or None.

        Without one of its listings, its VMs would look as if their runners were gone.
        """
        failed = [self.failed[s] for s in self._scopes(pool, scope) if s in self.failed]
        return "; ".join(failed) if failed else None

    def views(
        self,
        pool: PoolSpec,
        now: datetime.datetime,
        history: t.Optional[RunnerHistory] = None,
        in_flight: t.Optional[t.Mapping[str, datetime.datetime]] = None,
    ) -> t.List[RunnerView]:
        return derive_states(
            self.vms(pool.name),
            self.runners(pool.name, pool.scope),
            now,
            pool.timing,
            history,
            pool.scope,
            spec_hash(pool),
            in_flight,
        )

    def unlisted(self) -> t.Dict[str, int]:
        """VMs per pool that is not configured; VMs already DELETED (on their way out) do not count."""
        counts = {name: sum(1 for vm in vms if vm.status.upper() != "DELETED") for name, vms in self._vms.items()}
        return {name: count for name, count in sorted(counts.items()) if count and name not in self._configured}


@dataclasses.dataclass(frozen=True)
class Inspection:
    """The joined views of the configured pools, and the VMs of pools that are not configured."""

    views: t.Dict[str, t.List[RunnerView]]
    unmanaged: t.Dict[str, int]
    # Per pool that could not be looked at: why, naming the pool.
    errors: t.Dict[str, str] = dataclasses.field(default_factory=dict)


class Reconciler:
    def __init__(
        self,
        github: GithubPort,
        cloud: CloudPort,
        locks: t.Optional[LockFactory],
        clock: Clock = utcnow,
        rng: t.Callable[[], float] = random.random,
        stop: t.Optional[StopRequest] = None,
        backlog: t.Optional[Backlog] = None,
    ) -> None:
        self.github = github
        self.cloud = cloud
        self.locks = locks
        self.clock = clock
        self.rng = rng  # the jitter of creation backoffs
        # Once requested, no creation or deletion is started; the pools' states are saved as after any run.
        self.stop = stop or StopRequest()
        self.backlog = backlog  # the job queue, when pools are also sized for its unserved jobs

    def inspect(self, pools: t.Sequence[PoolSpec], controller_id: str) -> Inspection:
        """The joined view of each pool, without locking or changing anything.

        A pool whose runner listing failed has no view (an empty one) and its error in `errors`.
        """
        snapshot = Snapshot(self.github, self.cloud, controller_id, pools)
        now = self.clock()
        errors = {pool.name: snapshot.failure(pool.name, pool.scope) for pool in pools}
        failed = {name: f"pool {name}: {error}" for name, error in errors.items() if error is not None}
        views = {pool.name: [] if pool.name in failed else snapshot.views(pool, now) for pool in pools}
        return Inspection(views, snapshot.unlisted(), failed)

    def view(self, pools: t.Sequence[PoolSpec], controller_id: str) -> t.Dict[str, t.List[RunnerView]]:
        """The joined views; RunnerError when a pool's listing failed (its view would be wrong)."""
        inspection = self.inspect(pools, controller_id)
        if inspection.errors:
            raise RunnerError("; ".join(inspection.errors.values()))
        return inspection.views

    def run(self, pools: t.Sequence[PoolSpec], options: ReconcileOptions) -> ReconcileReport:
        if self.locks is None:
            raise ValueError("Reconciler.run needs a lock factory")
        start_calls = {
            "github": self.github.total_calls,
            "openstack": self.cloud.total_calls,
            "openstack_list_bytes": self.cloud.list_bytes,
        }
        start_wait = self.github.rate_status().write_wait
        reports: t.List[PoolReport] = []
        notes: t.List[str] = []
        with contextlib.ExitStack() as stack:
            # Every lock first, in a fixed order (no deadlock between runs), then list:
            # a listing taken before the lock could be stale by the time we act on it.
            held = {
                pool.name: stack.enter_context(self.locks(f"{options.controller_id}-{pool.name}"))
                for pool in sorted(pools, key=lambda p: p.name)
            }
            snapshot = Snapshot(
                self.github, self.cloud, options.controller_id, pools, unlisted=options.prune_unlisted_pools
            )
            unmanaged = snapshot.unlisted()
            pruned: t.List[str] = []
            if options.prune_unlisted_pools:
                # Only deletions follow, each asking GitHub first: a listing taken just before
                # these locks is safe to act on. A held lock means another reconcile serves the pool.
                for name in unmanaged:
                    try:
                        held[name] = stack.enter_context(self.locks(f"{options.controller_id}-{name}"))
                    except LockError as exc:
                        notes.append(f"pool {name} is not in pools and was not pruned: {exc}")
                    else:
                        pruned.append(name)
            # Leases run out while pools are carried out: renew them all along, from a thread.
            stack.enter_context(Heartbeat(held.values()))
            # A rate limit that a former run was told to wait out holds for every pool of the credential.
            for lock in held.values():
                not_before = github_not_before(lock.load_state())
                if not_before is not None:
                    self.github.hold_mutations_until(not_before)
            queued, scan, job_queue = self._queued_jobs(pools, options, notes)
            for pool in pools:
                reconcile = functools.partial(
                    self._reconcile_pool, pool, snapshot, held[pool.name], options, queued.get(pool.name, 0)
                )
                reports.append(self._isolated(pool.name, snapshot.failure(pool.name, pool.scope), reconcile, options))
            for name in pruned:
                prune = functools.partial(self._prune_pool, name, snapshot, held[name], options)
                reports.append(self._isolated(name, snapshot.failure(name, None), prune, options, unlisted=True))
        api_calls = {
            "github": self.github.total_calls - start_calls["github"],
            "openstack": self.cloud.total_calls - start_calls["openstack"],
            "openstack_list_bytes": self.cloud.list_bytes - start_calls["openstack_list_bytes"],
        }
        rate = self.github.rate_status()
        github_rate = GithubRate(rate.remaining, rate.write_wait - start_wait, _ahead(rate.not_before, self.clock()))
        return ReconcileReport(
            reports,
            api_calls,
            options.check_mode,
            unmanaged=unmanaged,
            notes=notes,
            github_rate=github_rate,
            queued_jobs=scan,
            job_queue=job_queue,
        )

    def _queued_jobs(
        self, pools: t.Sequence[PoolSpec], options: ReconcileOptions, notes: t.List[str]
    ) -> t.Tuple[t.Dict[str, int], t.Optional[QueuedJobScan], t.Optional[t.Dict[str, t.Any]]]:
        """The queued jobs to size each pool for (GitHub's count, the job queue's, the larger of both),
        what asking GitHub cost, and the job queue's report; notes on what could not be counted."""
        if options.mode != "present":
            return {}, None, None
        queued: t.Dict[str, int] = {}
        found: t.Dict[str, t.List[QueuedJob]] = {}
        scan: t.Optional[QueuedJobScan] = None
        backfill = self.backlog is not None and self.backlog.backfill
        if options.count_queued_jobs or backfill:
            found, scan, missed = queued_jobs_per_pool(
                self.github, pools, options.queued_jobs_max_requests, options.queued_jobs_rate_limit_floor
            )
            notes.extend(missed)
            if options.count_queued_jobs:
                queued = {name: len(jobs) for name, jobs in found.items()}
        if self.backlog is None:
            return queued, scan, None
        github_counts = queued if options.count_queued_jobs else None
        backlog = self.backlog.serve([p.name for p in pools], github_counts, found, check_mode=options.check_mode)
        notes.extend(backlog.notes)
        return backlog.sized_for(), scan, backlog.to_dict()

    def _isolated(
        self,
        name: str,
        failure: t.Optional[str],
        reconcile: t.Callable[[], PoolReport],
        options: ReconcileOptions,
        *,
        unlisted: bool = False,
    ) -> PoolReport:
        """The pool's report; when a listing it needs failed or reconciling it fails, a failed report
        (nothing planned, the error named) so that the other pools are still reconciled."""
        started = time.monotonic()
        if failure is None:
            try:
                return reconcile()
            except RunnerError as exc:
                failure = str(exc)
        execution = ExecutionResult(errors=[f"pool {name}: {failure}"])
        return PoolReport(
            name,
            Plan(name, desired=0, alive=0, create=0),
            [],
            execution,
            time.monotonic() - started,
            options.check_mode,
            now=self.clock(),
            unlisted=unlisted,
            reconciled=False,
        )

    def _reconcile_pool(
        self, pool: PoolSpec, snapshot: Snapshot, lock: PoolLock, options: ReconcileOptions, queued_jobs: int = 0
    ) -> PoolReport:
        started = time.monotonic()
        now = self.clock()
        seen, state, known = self._history(lock)
        history = observe(seen, snapshot.runners(pool.name, pool.scope), now)
        # Without a saved history (a first run, or a lock store that does not persist, such as
        # a fresh AWX container) ages are unknown: a runner without a VM counts as old, so an
        # orphan is cleaned up now rather than never.
        # Runners the reactive consumer is spawning: not orphans while their VM is on its way,
        # and counted as alive before either shows in a listing.
        spawning = in_flight_spawns(state, now, pool.timing)
        views = snapshot.views(pool, now, history if known else None, spawning)
        unlisted_spawns = len(set(spawning) - {view.name for view in views})
        delays = {"base": pool.creation_backoff, "cap": pool.creation_backoff_max}
        saved = CreationBackoff.from_dict(state.get("backoff"))
        backoff = observe_boots(saved, views, seen.was_online, now, rng=self.rng, **delays)
        plan = plan_pool(
            pool, views, mode=options.mode, queued_jobs=queued_jobs, force=options.force, in_flight=unlisted_spawns
        )
        plan = hold_creations(plan, backoff, now)
        held_back = _ahead(self.github.rate_status().not_before, now)
        if held_back is not None:
            plan = without_github_changes(plan)
        # A lost lock or a stop request stops the pool's changes before the next mutating call.
        executor = PlanExecutor(
            self.github, self.cloud, options.controller_id, self.clock, guard=guard_with(self.stop, lock.ensure_held)
        )
        if options.check_mode:
            execution = executor.preview(pool, plan)
        else:
            if plan.create and CENSUS_KEY in state:
                # The consumers' census would not know of the servers made now, even if this run
                # stopped before its state is saved: it goes before the first of them.
                state = without_census(state)
                lock.save_state(state)
            execution = executor.execute(pool, plan)
            history = record_created(history, execution.created, now)
            backoff = after_failures(backoff, execution.create_failures, now, rng=self.rng, **delays)
            github = self._github_state()
            try:
                lock.save_state({**state, "history": history.to_dict(), "backoff": backoff.to_dict(), "github": github})
            except LockError as exc:
                execution.errors.append(f"pool {pool.name}: its state was not saved: {exc}")
        duration = time.monotonic() - started
        return PoolReport(
            pool.name,
            plan,
            views,
            execution,
            duration,
            options.check_mode,
            backoff,
            now,
            scope_changed=scope_changed(views, pool.scope),
            github_not_before=held_back,
        )

    def _prune_pool(self, name: str, snapshot: Snapshot, lock: PoolLock, options: ReconcileOptions) -> PoolReport:
        """Empty a pool that is not configured: its VMs' recorded scopes are the only ones asked."""
        started = time.monotonic()
        now = self.clock()
        runners = snapshot.runners(name, None)
        seen, state, known = self._history(lock)
        history = observe(seen, runners, now)
        views = derive_states(snapshot.vms(name), runners, now, UNLISTED_POOL_TIMING, history if known else None)
        plan = plan_unlisted_pool(name, views, UNLISTED_POOL_TIMING, force=options.force)
        held_back = _ahead(self.github.rate_status().not_before, now)
        if held_back is not None:
            plan = without_github_changes(plan)
        if options.check_mode:
            execution = ExecutionResult()
        else:
            executor = PlanExecutor(
                self.github,
                self.cloud,
                options.controller_id,
                self.clock,
                guard=guard_with(self.stop, lock.ensure_held),
            )
            execution = executor.execute_deletions(plan)
            try:
                lock.save_state({**state, "history": history.to_dict(), "github": self._github_state()})
            except LockError as exc:
                execution.errors.append(f"pool {name}: its state was not saved: {exc}")
        duration = time.monotonic() - started
        return PoolReport(
            name, plan, views, execution, duration, options.check_mode, unlisted=True, github_not_before=held_back
        )

    def _github_state(self) -> t.Dict[str, t.Any]:
        """Kept with the pool's state: the next run then sends no change before GitHub allows it."""
        not_before = _ahead(self.github.rate_status().not_before, self.clock())
        return {"not_before": None if not_before is None else not_before.isoformat()}

    @staticmethod
    def _history(lock: PoolLock) -> t.Tuple[RunnerHistory, t.Dict[str, t.Any], bool]:
        """The history the lock saved, the lock's whole state, and whether a history was saved."""
        state = lock.load_state()
        previous = state.get("history")
        return RunnerHistory.from_dict(previous or {}), state, bool(previous)


def github_not_before(state: t.Mapping[str, t.Any]) -> t.Optional[datetime.datetime]:
    """The moment before which GitHub asked for no change, as a pool's saved state remembers it."""
    github = state.get("github")
    return parse_timestamp(github.get("not_before")) if isinstance(github, dict) else None


def _ahead(moment: t.Optional[datetime.datetime], now: datetime.datetime) -> t.Optional[datetime.datetime]:
    """`moment` while it is still to come, else None."""
    return moment if moment is not None and moment > now else None


def listing_failure(scope: Scope, exc: RunnerError) -> str:
    """Why the runners of `scope` could not be listed, with what a 404 or 403 from GitHub also means."""
    text = f"cannot list the runners of {scope}: {exc}"
    if isinstance(exc, GithubError) and exc.status == 404:
        # GitHub answers 404, not 403, when the token may not see the runners.
        text += f" ({scope} does not exist, or the token lacks admin rights on it)"
    elif isinstance(exc, GithubError) and exc.status == 403:
        text += f" (the token may not manage the self-hosted runners of {scope})"
    return text


def queued_jobs_per_pool(
    github: GithubPort, pools: t.Sequence[PoolSpec], max_requests: int, rate_limit_floor: int
) -> t.Tuple[t.Dict[str, t.List[QueuedJob]], QueuedJobScan, t.List[str]]:
    """Queued jobs per pool (each job once, for the first pool in the given order that can take
    it), what finding them cost (at most `max_requests` requests for all scopes together), and
    one note per scope whose jobs could not be counted (its pools are sized without them)."""
    routed: t.Dict[str, t.List[QueuedJob]] = {pool.name: [] for pool in pools}
    scopes: t.Dict[Scope, t.List[PoolSpec]] = collections.defaultdict(list)
    for pool in pools:
        scopes[pool.scope].append(pool)
    total = QueuedJobScan()
    missed: t.List[str] = []
    for scope, scope_pools in scopes.items():
        try:
            scan = github.list_queued_jobs(
                scope, max_requests=max(0, max_requests - total.requests), rate_limit_floor=rate_limit_floor
            )
        except RunnerError as exc:
            names = ", ".join(p.name for p in scope_pools)
            missed.append(
                f"count_queued_jobs: the queued jobs of {scope} were not counted ({exc}); pools {names} are sized"
                " without them"
            )
            continue
        for job in sorted(scan.jobs, key=lambda j: j.id):
            taker = next((p for p in scope_pools if job_matches(job.labels, p.labels)), None)
            if taker is not None:
                routed[taker.name].append(job)
        total += scan
    return routed, total, missed


def idle_counts(views: t.Mapping[str, t.Sequence[RunnerView]]) -> t.Dict[str, int]:
    return {name: sum(1 for v in pool_views if v.state is RunnerState.IDLE) for name, pool_views in views.items()}


def wait_for_idle(
    reconciler: Reconciler,
    pools: t.Sequence[PoolSpec],
    controller_id: str,
    timeout: float,
    sleep: t.Callable[[float], None] = time.sleep,
    max_interval: float = 5.0,
) -> t.Dict[str, int]:
    """Wait until every pool has at least `min_idle` idle runners; returns the idle counts.

    Each poll costs one server listing and one runner listing per scope; polls start
    1 s apart (runners boot in seconds to minutes) and back off to `max_interval`.
    """
    deadline = time.monotonic() + timeout
    interval = 1.0
    while True:
        counts = idle_counts(reconciler.view(pools, controller_id))
        # A min_idle above max_runners is capped by it.
        if all(counts[p.name] >= min(p.min_idle, p.max_runners) for p in pools):
            return counts
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            short = ", ".join(f"{p.name}: {counts[p.name]}/{p.min_idle} idle" for p in pools)
            raise TimeoutError(f"pools did not reach min_idle within {timeout:.0f}s ({short})")
        sleep(min(interval, remaining))
        interval = min(interval * 2, max_interval)
