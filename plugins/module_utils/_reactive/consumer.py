# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The reactive consumer: claims queued jobs and spawns one runner per job.

One round (`Consumer.serve_once`) claims up to the free spawn slots, then serves each
pool's claimed jobs as one batch:

1. **Check** each job where it entered: a job of another GitHub host, a repository
   outside the pool's scope or labels the pool does not offer go to `dead` with the
   reason; then GitHub is asked (GET job). Not queued any more: the queue records
   what GitHub says; 404: `dead`; GitHub unreachable or failing: released with backoff.
2. **Reserve** room under the pool's lock, the same lock (file or MongoDB lease) as the
   reconcile's, held only for this step: one server listing of the pool, the
   reservations still in flight (`_state.in_flight_spawns`) and the pool's creation
   backoff decide how many of the batch may spawn. The reserved names are written to
   the pool's state before the lock is released, so the reconcile counts them as
   alive and never takes their JIT records for orphans. Jobs over `max_runners` are
   released with backoff; a job whose runner's VM is already listed (an earlier
   attempt got that far) is marked spawned without a second runner.
3. **Spawn** the reserved ones concurrently, through the same `PlanExecutor.create_runner`
   as the reconcile (JIT config, then the server; the JIT record is deleted if the
   server cannot be created). The runner name is derived from the job id, so every
   attempt of a job uses the same name: a leftover JIT record of a crashed attempt
   collides (409) and is replaced, a busy one means the job's runner exists.

A consumer killed at any point loses nothing: its leases expire and another claim
retries the job; its reservations expire after `registration_grace`.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import threading
import time
import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._backoff import CreationBackoff
from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import PoolSpec
from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import (
    CloudError,
    GithubError,
    LockError,
    RunnerError,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._identity import (
    owns_name,
    reactive_runner_name,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._manager import Clock, PlanExecutor, utcnow
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import ScopeKind, job_matches
from ansible_collections.selfhosted.github_runners.plugins.module_utils._ports import CloudPort, GithubPort
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.job import Job, JobStatus
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import (
    JobQueue,
    Lease,
    LeaseLostError,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reconcile import LockFactory
from ansible_collections.selfhosted.github_runners.plugins.module_utils._state import (
    fresh_census,
    in_flight_spawns,
    with_census,
    with_in_flight,
)

log = logging.getLogger("selfhosted.github_runners.consumer")

#: How long a job waits when its pool's lock could not be had, or another attempt's spawn is in flight.
SHORT_DELAY = 2.0


class ConsumerEvents:
    """What the consumer tells its observers (metrics); every method does nothing here."""

    def claimed(self, pool: str, count: int) -> None: ...

    def spawned(self, pool: str, since_claim: float, since_received: float) -> None: ...

    def released(self, pool: str, reason: str) -> None: ...

    def dead(self, pool: str) -> None: ...

    def reported(self, pool: str, status: str) -> None: ...

    def api_error(self, service: str) -> None: ...


@dataclasses.dataclass(frozen=True)
class ConsumerOptions:
    controller_id: str
    api_host: str  # the GitHub API host this consumer's credentials belong to
    concurrency: int = 8  # jobs being served at once
    poll_interval: float = 0.25  # seconds between claims while nothing is claimable and no doorbell rang
    max_attempts: int = 5
    lock_timeout: float = 30.0


@dataclasses.dataclass
class _Work:
    lease: Lease
    claimed_at: float  # time.monotonic()
    name: str = ""
    # What GitHub said of a job that ran on another job's runner: recorded once its own runner is spawned.
    ran: t.Optional[t.Tuple[JobStatus, t.Optional[str]]] = None


class Consumer:
    """Serves the jobs of `pools` from `queue`; thread-safe, one per process."""

    def __init__(
        self,
        pools: t.Sequence[PoolSpec],
        queue: JobQueue,
        github: GithubPort,
        cloud: CloudPort,
        locks: LockFactory,
        options: ConsumerOptions,
        *,
        events: t.Optional[ConsumerEvents] = None,
        clock: Clock = utcnow,
    ) -> None:
        if not pools:
            raise ValueError("a consumer needs at least one pool")
        self.pools = {pool.name: pool for pool in pools}
        self.queue = queue
        self.github = github
        self.cloud = cloud
        self.locks = locks
        self.options = options
        self.events = events or ConsumerEvents()
        self.clock = clock
        self.executor = PlanExecutor(github, cloud, options.controller_id, clock)
        self._held: t.Dict[str, Lease] = {}  # claim id -> lease, for the heartbeat
        self._active: t.Set[int] = set()  # id() of the works being served: the slots taken
        self._guard = threading.Lock()
        self._stopping = threading.Event()
        self._wake = threading.Event()  # set: claim now (a job was queued, or a slot freed)
        # Batches wait on the calls they hand out: two executors, so that they never wait on themselves.
        self._batches = concurrent.futures.ThreadPoolExecutor(
            max_workers=len(self.pools), thread_name_prefix="ghr-consumer-pool"
        )
        self._calls = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(2, options.concurrency), thread_name_prefix="ghr-consumer-call"
        )

    # Loop ------------------------------------------------------------------------------------
    def run(self, stop: threading.Event, renew_every: t.Optional[float] = None) -> None:
        """Claim and serve until `stop` is set; then release what was claimed but not started."""
        heartbeat = threading.Thread(
            target=self._renew_leases,
            args=(stop, renew_every or self.queue.lease_ttl / 3),
            name="ghr-consumer-leases",
            daemon=True,
        )
        heartbeat.start()
        listener: t.Optional[threading.Thread] = None
        if self.queue.doorbell is not None:  # claim as soon as a job is queued, not at the next poll
            listener = threading.Thread(
                target=self.queue.doorbell.listen,
                args=(list(self.pools), self.wake, stop),
                name="ghr-consumer-doorbell",
                daemon=True,
            )
            listener.start()
        try:
            while not stop.is_set():
                self._wake.clear()  # before the claim: a wake-up during it makes the next one immediate
                try:
                    claimed = self.serve_once()
                except RunnerError as exc:  # the queue is unreachable: retry after a poll
                    log.warning("claiming failed: %s", exc)
                    claimed = 0
                if not claimed:
                    self._wake.wait(self.options.poll_interval)
        finally:
            self._stopping.set()
            self._batches.shutdown(wait=True)
            self._calls.shutdown(wait=True)
            heartbeat.join(timeout=1)
            if listener is not None:
                listener.join(timeout=1)

    def wake(self) -> None:
        """Claim now instead of after the poll interval (thread-safe)."""
        self._wake.set()

    def serve_once(self) -> int:
        """One claim round: the number of jobs claimed (their serving goes on in threads)."""
        with self._guard:
            free = self.options.concurrency - len(self._active)
        if free <= 0 or self._stopping.is_set():
            return 0
        result = self.queue.claim(
            list(self.pools), limit=free, max_attempts=self.options.max_attempts, runner_name=self._runner_name
        )
        for dead in result.dead:
            log.warning("job %s is dead: %s", dead.id, dead.reason)
            self.events.dead(dead.pool)
        now = time.monotonic()
        batches: t.Dict[str, t.List[_Work]] = {}
        for lease in result.leases:
            batches.setdefault(lease.job.pool, []).append(_Work(lease, now))
        with self._guard:
            self._active.update(id(work) for works in batches.values() for work in works)
            self._held.update({lease.claim_id: lease for lease in result.leases})
        for pool, works in batches.items():
            self.events.claimed(pool, len(works))
            self._batches.submit(self._serve_batch, self.pools[pool], works)
        return len(result.leases)

    def _renew_leases(self, stop: threading.Event, interval: float) -> None:
        while not stop.wait(interval):
            with self._guard:
                leases = list(self._held.values())
            try:
                renewed = self.queue.renew(leases)
            except RunnerError as exc:
                log.warning("renewing %d job leases failed: %s", len(leases), exc)
                continue
            with self._guard:
                for lease in renewed.held:
                    if lease.claim_id in self._held:
                        self._held[lease.claim_id] = lease
                for lease in renewed.lost:
                    log.warning("job %s: the lease of attempt %d was lost", lease.job.id, lease.attempt)
                    self._held.pop(lease.claim_id, None)

    def _done(self, work: _Work) -> None:
        """The work's slot is free again (idempotent); the next claim need not wait for the poll."""
        with self._guard:
            freed = id(work) in self._active
            self._active.discard(id(work))
            self._held.pop(work.lease.claim_id, None)
        if freed:
            self.wake()

    def _still_held(self, work: _Work) -> bool:
        with self._guard:
            return work.lease.claim_id in self._held

    # One pool's batch --------------------------------------------------------------------------
    def _serve_batch(self, pool: PoolSpec, works: t.List[_Work]) -> None:
        try:
            checked = [work for work in self._map(self._check, pool, works) if work is not None]
            if checked and self._stopping.is_set():
                for work in checked:
                    self._release(pool, work, "the consumer is stopping", 0.0, kind="stopping")
                checked = []
            for work in self._reserve(pool, checked):
                self._calls.submit(self._spawn_and_finish, pool, work)
        except Exception:  # never lose the slot accounting; the leases expire and are retried
            log.exception("pool %s: serving %d jobs failed", pool.name, len(works))
            for work in works:
                self._done(work)

    def _map(
        self, fn: t.Callable[[PoolSpec, _Work], t.Optional[_Work]], pool: PoolSpec, works: t.Sequence[_Work]
    ) -> t.List[t.Optional[_Work]]:
        if len(works) == 1:
            return [fn(pool, works[0])]
        return list(self._calls.map(lambda work: fn(pool, work), works))

    def _check(self, pool: PoolSpec, work: _Work) -> t.Optional[_Work]:
        """The work when its job is to be spawned; otherwise its outcome is recorded and None."""
        job = work.lease.job
        problem = unservable(job.key.api_host, job.repository, job.labels, pool, self.options.api_host)
        if problem is not None:
            self._kill(pool, work, problem)
            return None
        try:
            report = self.github.get_job(job.repository, job.job_id)
        except RunnerError as exc:
            self.events.api_error("github")
            self._release(pool, work, f"GitHub could not say whether the job still waits: {exc}", kind="github")
            return None
        if report is None:
            self._kill(pool, work, f"job not found (404) in {job.repository}")
            return None
        if report.status in (JobStatus.IN_PROGRESS.value, JobStatus.COMPLETED.value):
            # GitHub hands a job to any idle runner with the labels: when the runner that took this
            # one was spawned for another job, that job waits for a runner now, so this job's runner
            # is still owed (it takes that job or the next one).
            other = self._spawned_for_another(pool, job.id, report.runner_name)
            if other is None:
                self._settle(pool, work, JobStatus(report.status), report.runner_name)
                return None
            log.info(
                "job %s ran on %s, the runner of job %s: spawning one in its place", job.id, report.runner_name, other
            )
            work.ran = (JobStatus(report.status), report.runner_name)
        elif report.status != JobStatus.QUEUED.value:
            self._release(pool, work, f"GitHub reports the job as {report.status}, not queued", kind="not_queued")
            return None
        work.name = self._runner_name(job)
        return work

    def _runner_name(self, job: Job) -> str:
        """The name of the runner spawned for `job`, the same for every attempt."""
        return reactive_runner_name(self.options.controller_id, job.pool, job.job_id)

    def _spawned_for_another(self, pool: PoolSpec, job_id: str, runner: t.Optional[str]) -> t.Optional[str]:
        """The job that `runner` was spawned for, when it is one of the pool's and not this job's."""
        if runner is None or not owns_name(self.options.controller_id, pool.name, runner):
            return None
        try:
            return self.queue.spawned_with(runner, other_than=job_id)
        except RunnerError as exc:
            log.warning("job %s: cannot tell whose runner %s is: %s", job_id, runner, exc)
            return None

    def _reserve(self, pool: PoolSpec, works: t.List[_Work]) -> t.List[_Work]:
        """The works that may spawn now, their names recorded as in flight in the pool's state."""
        if not works:
            return []
        key = f"{self.options.controller_id}-{pool.name}"
        try:
            with self.locks(key) as lock:
                now = self.clock()
                state = lock.load_state()
                backoff = CreationBackoff.from_dict(state.get("backoff"))
                if backoff.active(now) and backoff.until is not None:
                    wait = (backoff.until - now).total_seconds()
                    for work in works:
                        self._release(
                            pool,
                            work,
                            f"the pool's creations back off until {backoff.until:%H:%M:%S}Z",
                            wait,
                            kind="backoff",
                        )
                    return []
                in_flight = in_flight_spawns(state, now, pool.timing)
                census = fresh_census(state, now, pool.timing)
                listed = census is None or not census_suffices(census, in_flight, [w.name for w in works], pool)
                if listed:
                    running, seen = self._listing(pool)
                    # A reservation has done its work once its VM is listed: its status counts from then on.
                    in_flight = {name: at for name, at in in_flight.items() if name not in seen}
                    state = with_in_flight(state, (), now, pool.timing, seen=seen)
                else:
                    running = t.cast(t.FrozenSet[str], census)
                room = pool.max_runners - len(running) - len(set(in_flight) - running)
                reserved: t.List[_Work] = []
                for work in works:
                    if work.name in running:
                        self._spawned(pool, work, "its runner's VM was already created")
                    elif work.name in in_flight:
                        self._release(
                            pool, work, "another attempt is spawning its runner", SHORT_DELAY, kind="in_flight"
                        )
                    elif not self._still_held(work):
                        self._done(work)  # its lease was lost: another claim serves the job
                    elif room > 0:
                        reserved.append(work)
                        room -= 1
                    else:
                        self._release(
                            pool, work, f"pool {pool.name} is at max_runners ({pool.max_runners})", kind="max_runners"
                        )
                if reserved or listed:
                    state = with_in_flight(state, [w.name for w in reserved], now, pool.timing)
                    lock.save_state(with_census(state, running, now) if listed else state)
                return reserved
        except (LockError, RunnerError) as exc:
            for work in works:
                if self._still_held(work):
                    self._release(pool, work, f"no room could be reserved: {exc}", SHORT_DELAY, kind="lock")
                else:
                    self._done(work)
            return []

    def _listing(self, pool: PoolSpec) -> t.Tuple[t.FrozenSet[str], t.FrozenSet[str]]:
        """The names of the pool's servers that may run, and of all of them, from a server listing."""
        vms = [
            vm
            for vm in self.cloud.list_servers(self.options.controller_id, pool.name)
            if owns_name(self.options.controller_id, pool.name, vm.name)
        ]
        return frozenset(vm.name for vm in vms if vm.may_run), frozenset(vm.name for vm in vms)

    def _spawn_and_finish(self, pool: PoolSpec, work: _Work) -> None:
        try:
            self._spawn(pool, work)
        except Exception:
            log.exception("job %s: spawning failed", work.lease.job.id)
            self._done(work)

    def _spawn(self, pool: PoolSpec, work: _Work) -> None:
        job = work.lease.job
        try:
            group_id = self.github.runner_group_id(pool.scope, pool.runner_group)
            try:
                self.executor.create_runner(pool, group_id, work.name, log.warning, job_id=job.job_id)
            except GithubError as exc:
                if exc.status != 409:
                    raise
                # The name is taken: a JIT record of an earlier attempt that never got its VM.
                leftover = self.github.find_runner(pool.scope, work.name)
                if leftover is not None and leftover.busy:
                    self._spawned(pool, work, "its runner is already running a job")
                    return
                if leftover is not None:
                    self.github.delete_runner(pool.scope, leftover.id)
                self.executor.create_runner(pool, group_id, work.name, log.warning, job_id=job.job_id)
        except RunnerError as exc:
            self.events.api_error("openstack" if isinstance(exc, CloudError) else "github")
            self._release(pool, work, f"the runner could not be created: {exc}", kind="create")
            return
        self._spawned(pool, work, None)

    # Outcomes ----------------------------------------------------------------------------------
    def _finish(self, work: _Work, outcome: str, record: t.Callable[[], object]) -> bool:
        try:
            record()
            return True
        except LeaseLostError as exc:
            log.warning("job %s: %s (it was %s here)", work.lease.job.id, exc, outcome)
        except RunnerError as exc:  # the queue is unreachable: the lease expires and the job is retried
            log.warning("job %s: recording %s failed: %s", work.lease.job.id, outcome, exc)
        finally:
            self._done(work)
        return False

    def _spawned(self, pool: PoolSpec, work: _Work, note: t.Optional[str]) -> None:
        def record() -> None:
            if work.ran is None:
                self.queue.mark_spawned(work.lease, work.name)
            else:
                self.queue.mark_reported(work.lease, work.ran[0], work.ran[1], spawned_runner=work.name)

        if self._finish(work, "spawned", record):
            since_received = max(0.0, (self.clock() - work.lease.job.received_at).total_seconds())
            self.events.spawned(pool.name, time.monotonic() - work.claimed_at, since_received)
            log.info("job %s: runner %s%s", work.lease.job.id, work.name, f" ({note})" if note else " spawned")

    def _release(self, pool: PoolSpec, work: _Work, reason: str, delay: t.Optional[float] = None, *, kind: str) -> None:
        """Back to the queue after `delay` (default: the queue's backoff); `kind` labels the metric."""
        if self._finish(work, "released", lambda: self.queue.release(work.lease, reason, delay)):
            self.events.released(pool.name, kind)
            log.info("job %s released: %s", work.lease.job.id, reason)

    def _kill(self, pool: PoolSpec, work: _Work, reason: str) -> None:
        if self._finish(work, "dead", lambda: self.queue.mark_dead(work.lease, reason)):
            self.events.dead(pool.name)
            log.warning("job %s is dead: %s", work.lease.job.id, reason)

    def _settle(self, pool: PoolSpec, work: _Work, status: JobStatus, runner: t.Optional[str]) -> None:
        if self._finish(work, "reported", lambda: self.queue.mark_reported(work.lease, status, runner)):
            self.events.reported(pool.name, status.value)


def census_suffices(
    census: t.AbstractSet[str], in_flight: t.Mapping[str, object], names: t.Sequence[str], pool: PoolSpec
) -> bool:
    """Whether the pool's census may stand in for a server listing for a batch of runner `names`.

    A census is only ever used to count, and only counts too many (see `fresh_census`): it
    stands in when it leaves room for the whole batch and names none of its runners. A batch
    that would fill the pool, or whose runner may exist already, is decided on a listing.
    """
    counted = set(census) | set(in_flight)
    return pool.max_runners - len(counted) >= len(names) and not counted.intersection(names)


def unservable(
    api_host: str, repository: str, labels: t.Sequence[str], pool: PoolSpec, served_host: str
) -> t.Optional[str]:
    """Why the pool cannot serve this job (it goes to `dead`), or None."""
    if api_host != served_host:
        return f"the job is on {api_host}, and this consumer's credentials are for {served_host}"
    scope = pool.scope
    owner = repository.split("/", 1)[0]
    if scope.kind is ScopeKind.REPOSITORY and repository.casefold() != scope.name.casefold():
        return f"repository {repository} is outside pool {pool.name}'s scope ({scope})"
    if scope.kind is ScopeKind.ORGANIZATION and owner.casefold() != scope.name.casefold():
        return f"repository {repository} is outside pool {pool.name}'s scope ({scope})"
    if not job_matches(labels, pool.labels, generic_aside=True):
        return f"pool {pool.name} offers labels {list(pool.labels)}, the job asks for {list(labels)}"
    return None
