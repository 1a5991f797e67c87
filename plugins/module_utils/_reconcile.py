# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One reconcile of a set of pools: lock, list once, derive, plan, execute, report.

API budget per steady-state run: one server listing per cloud and one runner
listing per GitHub scope, shared by all pools; nothing per runner unless a
runner is created or deleted.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
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
from ansible_collections.selfhosted.github_runners.plugins.module_utils._identity import owns_name
from ansible_collections.selfhosted.github_runners.plugins.module_utils._lock import PoolLock
from ansible_collections.selfhosted.github_runners.plugins.module_utils._manager import (
    Clock,
    PlanExecutor,
    utcnow,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import (
    GithubRunner,
    Mode,
    RunnerState,
    RunnerView,
    Scope,
    VmInfo,
    job_matches,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._planner import plan_pool
from ansible_collections.selfhosted.github_runners.plugins.module_utils._ports import CloudPort, GithubPort
from ansible_collections.selfhosted.github_runners.plugins.module_utils._report import PoolReport, ReconcileReport
from ansible_collections.selfhosted.github_runners.plugins.module_utils._state import (
    RunnerHistory,
    derive_states,
    observe,
    record_created,
)

LockFactory = t.Callable[[str], PoolLock]


@dataclasses.dataclass(frozen=True)
class ReconcileOptions:
    controller_id: str
    mode: Mode = "present"
    force: bool = False
    check_mode: bool = False
    # Ask GitHub for queued jobs and size pools for them (costs requests per repository and run).
    count_queued_jobs: bool = False


class Snapshot:
    """What the cloud and GitHub say about our runners, listed once per run."""

    def __init__(self, github: GithubPort, cloud: CloudPort, controller_id: str, pools: t.Sequence[PoolSpec]) -> None:
        self.controller_id = controller_id
        self._vms: t.Dict[str, t.List[VmInfo]] = collections.defaultdict(list)
        for vm in cloud.list_servers(controller_id):
            self._vms[vm.pool].append(vm)
        self._runners: t.Dict[Scope, t.List[GithubRunner]] = {}
        for pool in pools:
            if pool.scope not in self._runners:
                self._runners[pool.scope] = github.list_runners(pool.scope)

    def vms(self, pool: PoolSpec) -> t.List[VmInfo]:
        return list(self._vms.get(pool.name, []))

    def runners(self, pool: PoolSpec) -> t.List[GithubRunner]:
        return [r for r in self._runners[pool.scope] if owns_name(self.controller_id, pool.name, r.name)]


class Reconciler:
    def __init__(
        self,
        github: GithubPort,
        cloud: CloudPort,
        locks: t.Optional[LockFactory],
        clock: Clock = utcnow,
        rng: t.Callable[[], float] = random.random,
    ) -> None:
        self.github = github
        self.cloud = cloud
        self.locks = locks
        self.clock = clock
        self.rng = rng  # the jitter of creation backoffs

    def view(self, pools: t.Sequence[PoolSpec], controller_id: str) -> t.Dict[str, t.List[RunnerView]]:
        """The joined view of each pool, without locking or changing anything."""
        snapshot = Snapshot(self.github, self.cloud, controller_id, pools)
        now = self.clock()
        return {
            pool.name: derive_states(snapshot.vms(pool), snapshot.runners(pool), now, pool.timing) for pool in pools
        }

    def run(self, pools: t.Sequence[PoolSpec], options: ReconcileOptions) -> ReconcileReport:
        if self.locks is None:
            raise ValueError("Reconciler.run needs a lock factory")
        start_calls = {"github": self.github.total_calls, "openstack": self.cloud.total_calls}
        reports: t.List[PoolReport] = []
        with contextlib.ExitStack() as stack:
            # Every lock first, in a fixed order (no deadlock between runs), then list:
            # a listing taken before the lock could be stale by the time we act on it.
            held = {
                pool.name: stack.enter_context(self.locks(f"{options.controller_id}-{pool.name}"))
                for pool in sorted(pools, key=lambda p: p.name)
            }
            snapshot = Snapshot(self.github, self.cloud, options.controller_id, pools)
            queued = (
                queued_jobs_per_pool(self.github, pools)
                if options.count_queued_jobs and options.mode == "present"
                else {}
            )
            for pool in pools:
                # Leases run out while earlier pools are carried out: renew them all first,
                # and stop (LockError) rather than act without the lock.
                for lock in held.values():
                    lock.renew()
                reports.append(self._reconcile_pool(pool, snapshot, held[pool.name], options, queued.get(pool.name, 0)))
        api_calls = {
            "github": self.github.total_calls - start_calls["github"],
            "openstack": self.cloud.total_calls - start_calls["openstack"],
        }
        return ReconcileReport(reports, api_calls, options.check_mode)

    def _reconcile_pool(
        self, pool: PoolSpec, snapshot: Snapshot, lock: PoolLock, options: ReconcileOptions, queued_jobs: int = 0
    ) -> PoolReport:
        started = time.monotonic()
        now = self.clock()
        runners = snapshot.runners(pool)
        state = lock.load_state()
        previous = state.get("history")
        seen = RunnerHistory.from_dict(previous or {})
        history = observe(seen, runners, now)
        # Without a saved history (a first run, or a lock store that does not persist, such as
        # a fresh AWX container) ages are unknown: a runner without a VM counts as old, so an
        # orphan is cleaned up now rather than never.
        views = derive_states(snapshot.vms(pool), runners, now, pool.timing, history if previous else None)
        delays = {"base": pool.creation_backoff, "cap": pool.creation_backoff_max}
        saved = CreationBackoff.from_dict(state.get("backoff"))
        backoff = observe_boots(saved, views, seen.was_online, now, rng=self.rng, **delays)
        plan = plan_pool(pool, views, mode=options.mode, queued_jobs=queued_jobs, force=options.force)
        plan = hold_creations(plan, backoff, now)
        executor = PlanExecutor(self.github, self.cloud, options.controller_id, self.clock)
        if options.check_mode:
            execution = executor.preview(pool, plan)
        else:
            execution = executor.execute(pool, plan)
            history = record_created(history, execution.created, now)
            backoff = after_failures(backoff, execution.create_failures, now, rng=self.rng, **delays)
            lock.save_state({**state, "history": history.to_dict(), "backoff": backoff.to_dict()})
        return PoolReport(
            pool.name, plan, views, execution, time.monotonic() - started, options.check_mode, backoff, now
        )


def queued_jobs_per_pool(github: GithubPort, pools: t.Sequence[PoolSpec]) -> t.Dict[str, int]:
    """Queued jobs per pool: each job counts once, for the first pool (in the given order) that can take it."""
    counts: t.Dict[str, int] = {pool.name: 0 for pool in pools}
    scopes: t.Dict[Scope, t.List[PoolSpec]] = collections.defaultdict(list)
    for pool in pools:
        scopes[pool.scope].append(pool)
    for scope, scope_pools in scopes.items():
        for job in sorted(github.list_queued_jobs(scope, None), key=lambda j: j.id):
            taker = next((p for p in scope_pools if job_matches(job.labels, p.labels)), None)
            if taker is not None:
                counts[taker.name] += 1
    return counts


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
        if all(counts[p.name] >= p.min_idle for p in pools):
            return counts
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            short = ", ".join(f"{p.name}: {counts[p.name]}/{p.min_idle} idle" for p in pools)
            raise TimeoutError(f"pools did not reach min_idle within {timeout:.0f}s ({short})")
        sleep(min(interval, remaining))
        interval = min(interval * 2, max_interval)
