# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The job queue in MongoDB: job documents in `jobs`, the leases on them in `claims`.

The API a consumer builds on::

    queue = JobQueue(MongoAccess(uri), owner="host-a:1234")
    queue.ensure_indexes()                          # once at start; idempotent
    result = queue.claim(["small", "large"], limit=4, max_attempts=5)
    for dead in result.dead: ...                    # poison documents and jobs out of attempts
    for lease in result.leases:                     # each job claimed by this consumer alone
        ...                                         # GET the job, check capacity, spawn
        queue.mark_spawned(lease, runner_name)      # or
        queue.release(lease, "pool at max_runners") # back to queued, after a backoff; or
        queue.mark_dead(lease, "job not found (404)")
    renewed = queue.renew(held_leases)              # from a heartbeat, well within lease_ttl
    renewed.held, renewed.lost                      # stop working on what was lost
    queue.expire_leases()                           # crashed claimers' jobs back to queued

The router and backfills call `enqueue(job)`, which also rings the doorbell (`doorbell.py`, when
the queue is opened with `doorbell=True`) for a newly queued job; the info module calls `depth()`; the reconcile calls `unserved()` to size pools
for the jobs no consumer served.

**Exclusivity rests on unique `_id` inserts only.** A claim is the insert of the document
``{_id: "<job id>#<attempt>"}`` into `claims`: of any number of contenders for attempt n
exactly one insert succeeds, on MongoDB and on FerretDB alike (FerretDB 1.x does not apply
a conditional `find_one_and_update` atomically, so nothing here relies on one). The winner
then checks that the previous attempt's lease is over and that the job document is still
claimable, and only then mirrors the lease into the job document, which serves queries
(claimable jobs, depth) and never decides who holds a job. A lease is held while its claim
is the newest of the job, has not ended and, for renewals, has not expired; a claimer that
crashed blocks its job for at most `lease_ttl`, then the next claim (attempt n+1) takes
over. `attempts` counts claims, so a job that keeps crashing its claimers reaches
`max_attempts` and goes to `dead` instead of taking consumers down forever.

Expiry compares stored times with the caller's clock: keep `lease_ttl` well above the
clock skew between consumer hosts, and renew well before a lease ends.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import functools
import logging
import random
import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import QueueError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._lock import default_owner
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.doorbell import (
    DEFAULT_COLLECTION as DEFAULT_WAKEUPS_COLLECTION,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.doorbell import Doorbell
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.job import (
    HELD_REPORT,
    REPORTED_STATUSES,
    Job,
    JobDocumentError,
    JobStatus,
    bounded_error,
    held_report_update,
    report_changes,
    settled_with_held,
    to_stored_time,
    validate_job_document,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.mongo import (
    DEFAULT_DATABASE,
    MongoAccess,
    is_duplicate_key,
    utc_now,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._retry import backoff

log = logging.getLogger("selfhosted.github_runners.queue")

DEFAULT_JOBS_COLLECTION = "jobs"
DEFAULT_CLAIMS_COLLECTION = "claims"
DEFAULT_LEASE_TTL = 120.0
# Claimers compete for the oldest jobs: read more candidates than asked for, so that
# losing a few races still fills the request.
_OVERFETCH = 4
_MAX_CANDIDATES = 500
_MAX_CLAIM_STEPS = 3  # attempts skipped past crashed claims before giving up on a job for now
_MAX_MERGE_ROUNDS = 5
_MAX_SWEEP = 1000


class LeaseLostError(QueueError):
    """The lease is no longer ours: it ended, or another consumer claimed the job after it expired."""


class EnqueueOutcome(str, enum.Enum):
    INSERTED = "inserted"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclasses.dataclass(frozen=True)
class Lease:
    """A consumer's exclusive hold on one attempt of a job, until `until` unless renewed."""

    job: Job
    attempt: int
    owner: str
    until: datetime.datetime

    @property
    def claim_id(self) -> str:
        return claim_id(self.job.id, self.attempt)


@dataclasses.dataclass(frozen=True)
class DeadJob:
    """A job that a claim moved to `dead`, with the reason stored in its `last_error`."""

    id: str
    reason: str
    pool: str = ""  # as the document named it ("" when it named none)


@dataclasses.dataclass(frozen=True)
class ClaimResult:
    leases: t.Tuple[Lease, ...] = ()
    dead: t.Tuple[DeadJob, ...] = ()


@dataclasses.dataclass(frozen=True)
class RenewResult:
    held: t.Tuple[Lease, ...] = ()  # with the new `until`
    lost: t.Tuple[Lease, ...] = ()


@dataclasses.dataclass(frozen=True)
class QueueDepth:
    """How many jobs of a pool are in one status, and how long the oldest has waited."""

    pool: str
    status: str
    count: int
    oldest_received_at: t.Optional[datetime.datetime]
    oldest_age: t.Optional[float]  # seconds

    def to_dict(self) -> t.Dict[str, t.Any]:
        oldest = self.oldest_received_at
        return {
            "pool": self.pool,
            "status": self.status,
            "count": self.count,
            "oldest_received_at": None if oldest is None else oldest.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "oldest_age": self.oldest_age,
        }


def claim_id(job_id: object, attempt: int) -> str:
    return f"{job_id}#{attempt}"


def claim_is_live(claim: t.Mapping[str, t.Any], now: datetime.datetime) -> bool:
    """A claim blocks others while it has not ended and its lease has not expired."""
    until = claim.get("lease_until")
    return claim.get("ended_at") is None and isinstance(until, datetime.datetime) and to_stored_time(until) >= now


def unserved_match(
    pools: t.Sequence[str], received_before: datetime.datetime, now: datetime.datetime
) -> t.Dict[str, t.Any]:
    """The jobs of `pools` that no consumer serves and that arrived before `received_before`.

    Unserved: `queued` (a released job's backoff included: no runner was started for it), or
    `claimed` under a lease that expired (its claimer crashed or hangs).
    """
    return {
        "pool": {"$in": list(pools)},
        "received_at": {"$lt": to_stored_time(received_before)},
        "$or": [
            {"status": JobStatus.QUEUED.value},
            {"status": JobStatus.CLAIMED.value, "lease_until": {"$lt": to_stored_time(now)}},
        ],
    }


def _status_order_key(depth: QueueDepth) -> t.Tuple[str, int, str]:
    known = [s.value for s in JobStatus]
    return (depth.pool, known.index(depth.status) if depth.status in known else len(known), depth.status)


class JobQueue:
    """The queue of one database; thread-safe (pymongo clients are), one instance per consumer."""

    def __init__(
        self,
        mongo: MongoAccess,
        *,
        database: str = DEFAULT_DATABASE,
        jobs_collection: str = DEFAULT_JOBS_COLLECTION,
        claims_collection: str = DEFAULT_CLAIMS_COLLECTION,
        wakeups_collection: str = DEFAULT_WAKEUPS_COLLECTION,
        doorbell: bool = False,
        owner: t.Optional[str] = None,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        backoff_base: float = 5.0,
        backoff_cap: float = 600.0,
        clock: t.Callable[[], datetime.datetime] = utc_now,
        rng: t.Callable[[], float] = random.random,
    ) -> None:
        if lease_ttl <= 0:
            raise ValueError("lease_ttl must be positive")
        self.mongo = mongo
        self.database = database
        self.owner = owner or default_owner()
        self.lease_ttl = lease_ttl
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.clock = clock
        self._rng = rng
        self._jobs_name = f"{database}.{jobs_collection}"
        self._claims_name = f"{database}.{claims_collection}"
        self._jobs = mongo.collection(database, jobs_collection)
        self._claims = mongo.collection(database, claims_collection)
        # Rung on every queued job and tailed by the consumers, when the deployment turns it on.
        self.doorbell = Doorbell(mongo, database, wakeups_collection) if doorbell else None

    def _now(self) -> datetime.datetime:
        return to_stored_time(self.clock())

    def _lease_end(self, now: datetime.datetime) -> datetime.datetime:
        return to_stored_time(now + datetime.timedelta(seconds=self.lease_ttl))

    # Setup ---------------------------------------------------------------------------------
    def ensure_indexes(self) -> None:
        """Create the indexes the queries use; does nothing when they exist."""

        def create() -> None:
            self._jobs.create_index([("pool", 1), ("status", 1), ("received_at", 1)], name="pool_status_received_at")
            self._jobs.create_index([("status", 1), ("lease_until", 1)], name="status_lease_until")
            self._jobs.create_index([("spawned_runner", 1)], name="spawned_runner")
            self._claims.create_index([("job", 1), ("attempt", -1)], name="job_attempt")

        self.mongo.call(f"creating the indexes of {self._jobs_name} and {self._claims_name}", create)
        if self.doorbell is None:
            return
        try:
            self.doorbell.ensure()
        except QueueError as exc:  # the doorbell only hurries the consumers; polling serves without it
            log.warning("%s; consumers find queued jobs by polling alone", exc)

    # Reports -------------------------------------------------------------------------------
    def enqueue(self, job: Job) -> EnqueueOutcome:
        """Insert the job, or merge the report into the stored document (see `report_changes`).

        Idempotent: the same report twice changes nothing the second time. The merge writes
        only if the stored status is still the one it read, so on MongoDB two concurrent
        reports never move a status backwards; a document under the job's id that is not a
        valid job is replaced by the report.
        A job stored as queued rings the doorbell (when on), so that idle consumers claim it at once.
        """
        if job.status not in REPORTED_STATUSES:
            raise QueueError(f"job {job.id}: status {job.status.value!r} cannot be enqueued, only reported ones")
        outcome = self._upsert(job)
        if self.doorbell is not None and job.status is JobStatus.QUEUED and outcome is not EnqueueOutcome.UNCHANGED:
            self.doorbell.ring(job.pool)
        return outcome

    def _upsert(self, job: Job) -> EnqueueOutcome:

        def upsert() -> EnqueueOutcome:
            for _round in range(_MAX_MERGE_ROUNDS):
                try:
                    self._jobs.insert_one(job.to_document())
                    return EnqueueOutcome.INSERTED
                except Exception as exc:
                    if not is_duplicate_key(exc):
                        raise
                raw = self._jobs.find_one({"_id": job.id})
                if raw is None:
                    continue  # deleted since the insert: insert again
                try:
                    existing = validate_job_document(raw)
                except JobDocumentError:
                    self._jobs.replace_one({"_id": job.id}, job.to_document())
                    return EnqueueOutcome.UPDATED
                now = self._now()
                held_back = self._held_back(existing, job)
                changes = report_changes(existing, held_back, now)
                if held_back is not job:
                    held = held_report_update(raw.get(HELD_REPORT), job)
                    if held is not None:
                        changes.update({HELD_REPORT: held, "updated_at": to_stored_time(now)})
                if not changes:
                    return EnqueueOutcome.UNCHANGED
                result = self._jobs.update_one({"_id": job.id, "status": existing.status.value}, {"$set": changes})
                if result.matched_count:
                    return EnqueueOutcome.UPDATED
            raise QueueError(f"job {job.id} in {self._jobs_name} kept changing during {_MAX_MERGE_ROUNDS} merges")

        return self.mongo.call(f"upsert of job {job.id} in {self._jobs_name}", upsert)

    def _held_back(self, existing: Job, report: Job) -> Job:
        """The report, or, for a job taken by a runner spawned for another job, the report less its progress.

        GitHub hands a job to any idle runner with its labels. When the runner spawned for job X
        takes job J before J's own runner exists, X is left waiting with no runner of its own:
        J stays claimable, and the consumer spawns J's runner, which takes X (or the next job).
        The progress held back is kept in the document's held report, and the attempt that
        settles J takes it on (`_finish`): GitHub sends each report once.
        """
        taken = report.status in (JobStatus.IN_PROGRESS, JobStatus.COMPLETED)
        if not (taken and existing.status in (JobStatus.QUEUED, JobStatus.CLAIMED) and report.runner_name):
            return report
        if self._spawned_with(report.runner_name, existing.id) is None:
            return report
        return dataclasses.replace(report, status=existing.status, runner_name=None, started_at=None, completed_at=None)

    # Claims --------------------------------------------------------------------------------
    def claim(
        self,
        pools: t.Sequence[str],
        limit: int = 1,
        *,
        max_attempts: t.Optional[int] = None,
        runner_name: t.Optional[t.Callable[[Job], str]] = None,
    ) -> ClaimResult:
        """Claim up to `limit` claimable jobs of `pools`, taken from the first few in arrival order.

        Claimable: `queued` with `not_before` passed, or `claimed` under an expired lease. A
        document that is not a valid job goes to `dead` with the reason, as does a job whose
        next attempt would exceed `max_attempts`; both are in the result's `dead`.
        `runner_name`: the name of the runner the claimer spawns for a job, written with the claim
        as its `spawned_runner`, before that runner can exist: a report of another job run by it
        then always finds whose runner it is (`_held_back`).
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if max_attempts is not None and max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        now = self._now()
        query = {
            "pool": {"$in": list(pools)},
            "$or": [
                {"status": JobStatus.QUEUED.value, "not_before": {"$lte": now}},
                {"status": JobStatus.QUEUED.value, "not_before": {"$exists": False}},
                {"status": JobStatus.CLAIMED.value, "lease_until": {"$lt": now}},
            ],
        }
        fetch = min(limit * _OVERFETCH, _MAX_CANDIDATES)
        # In the natural (insertion, so arrival) order: a server-side sort costs FerretDB an
        # in-memory sort of every claimable job on each claim, ten times the rest of the claim.
        candidates = self.mongo.call(
            f"listing claimable jobs in {self._jobs_name}",
            lambda: list(self._jobs.find(query).limit(fetch)),
        )
        leases: t.List[Lease] = []
        dead: t.List[DeadJob] = []
        # In random order within the first few: concurrent claimers then rarely race for one job.
        for raw in sorted(candidates, key=lambda _raw: self._rng()):
            if len(leases) >= limit:
                break
            outcome = self.mongo.call(
                f"claim of job {raw.get('_id')!r} in {self._claims_name}",
                functools.partial(self._claim_candidate, raw, now, max_attempts, runner_name),
            )
            if isinstance(outcome, Lease):
                leases.append(outcome)
            elif isinstance(outcome, DeadJob):
                dead.append(outcome)
        return ClaimResult(tuple(leases), tuple(dead))

    def _claim_candidate(
        self,
        raw: t.Mapping[str, t.Any],
        now: datetime.datetime,
        max_attempts: t.Optional[int],
        runner_name: t.Optional[t.Callable[[Job], str]] = None,
    ) -> t.Union[Lease, DeadJob, None]:
        job_id = raw.get("_id")
        try:
            job: t.Optional[Job] = validate_job_document(raw)
            problem = None
        except JobDocumentError as exc:
            job, problem = None, f"invalid job document: {exc}"
        known = raw.get("attempts")
        known_attempts = known if isinstance(known, int) and not isinstance(known, bool) and known >= 0 else 0
        attempt = self._win_claim(job_id, raw.get("pool"), known_attempts, now)
        if attempt is None:
            return None
        if job is None:
            return self._kill(
                job_id, attempt, raw.get("status"), problem or "invalid job document", now, raw.get("pool")
            )
        if max_attempts is not None and attempt > max_attempts:
            last = f"; last error: {job.last_error}" if job.last_error else ""
            reason = f"gave up after {max_attempts} attempts{last}"
            return self._kill(job_id, attempt, job.status.value, reason, now, job.pool)
        until = self._lease_end(now)
        # Guarded by the status and attempts as listed: a listing that went stale (the job was
        # claimed, released or spawned since) matches nothing, and the claim is dropped.
        listed = raw.get("attempts")
        claimed = {
            "status": JobStatus.CLAIMED.value,
            "attempts": attempt,
            "lease_owner": self.owner,
            "lease_until": until,
            "updated_at": now,
        }
        if runner_name is not None:
            claimed["spawned_runner"] = runner_name(job)
        mirrored = self._jobs.update_one(
            # A document written without `attempts` (none claimed it yet) matches as attempt 0.
            {"_id": job_id, "status": job.status.value, "attempts": listed if listed else {"$in": [0, None]}},
            {"$set": claimed},
        )
        if not mirrored.matched_count:
            self._drop_claim(job_id, attempt)
            return None
        if attempt > 1:
            self._claims.delete_many({"job": job_id, "attempt": {"$lt": attempt}})  # history, not leases
        held = dataclasses.replace(
            job,
            status=JobStatus.CLAIMED,
            attempts=attempt,
            lease_owner=self.owner,
            lease_until=until,
            updated_at=now,
        )
        return Lease(held, attempt, self.owner, until)

    def _win_claim(self, job_id: object, pool: object, known_attempts: int, now: datetime.datetime) -> t.Optional[int]:
        """The attempt number whose claim document this call inserted, or None when another holds the job."""
        attempt = known_attempts + 1
        for _step in range(_MAX_CLAIM_STEPS):
            try:
                self._claims.insert_one(
                    {
                        "_id": claim_id(job_id, attempt),
                        "job": job_id,
                        "attempt": attempt,
                        "owner": self.owner,
                        "pool": pool,
                        "claimed_at": now,
                        "lease_until": self._lease_end(now),
                        "ended_at": None,
                        "outcome": None,
                    }
                )
            except Exception as exc:
                if not is_duplicate_key(exc):
                    raise
                latest = self._claims.find_one({"job": job_id}, sort=[("attempt", -1)])
                if latest is None:
                    continue  # cleaned up meanwhile: the same attempt is free again
                if claim_is_live(latest, now):
                    return None
                attempt = int(latest["attempt"]) + 1  # past a crashed or finished claim
                continue
            if attempt > 1:
                # The job document may lag behind a claim that is still live (its mirror
                # write failed or is in flight): that lease holds, not ours.
                previous = self._claims.find_one({"_id": claim_id(job_id, attempt - 1)})
                if previous is not None and claim_is_live(previous, now):
                    self._drop_claim(job_id, attempt)
                    return None
            return attempt
        return None

    def _drop_claim(self, job_id: object, attempt: int) -> None:
        # A claim that never touched the job document: removing it frees the attempt number,
        # so abandoned races do not count towards max_attempts.
        self._claims.delete_one({"_id": claim_id(job_id, attempt), "owner": self.owner})

    def _kill(
        self, job_id: object, attempt: int, status: object, reason: str, now: datetime.datetime, raw_pool: object = None
    ) -> DeadJob:
        reason = bounded_error(reason)
        self._jobs.update_one(
            {"_id": job_id, "status": status},
            {
                "$set": {
                    "status": JobStatus.DEAD.value,
                    "last_error": reason,
                    "lease_owner": None,
                    "lease_until": None,
                    "updated_at": now,
                }
            },
        )
        self._end_claim(job_id, attempt, "dead", now)
        pool = raw_pool if isinstance(raw_pool, str) else ""
        return DeadJob(str(job_id), reason, pool)

    def _end_claim(self, job_id: object, attempt: int, outcome: str, now: datetime.datetime) -> None:
        self._claims.update_one(
            {"_id": claim_id(job_id, attempt), "ended_at": None}, {"$set": {"ended_at": now, "outcome": outcome}}
        )

    # Leases ----------------------------------------------------------------------------------
    def renew(self, leases: t.Sequence[Lease]) -> RenewResult:
        """Extend the leases still held by `lease_ttl` from now; the others are `lost`.

        Held: the lease's claim is the newest of its job, has not ended and has not expired.
        Three requests whatever the number of leases.
        """
        if not leases:
            return RenewResult()
        now = self._now()
        until = self._lease_end(now)

        def run() -> RenewResult:
            jobs = list({lease.job.id for lease in leases})
            claims = list(
                self._claims.find({"job": {"$in": jobs}}, {"job": 1, "attempt": 1, "ended_at": 1, "lease_until": 1})
            )
            newest: t.Dict[object, int] = {}
            by_id = {}
            for claim in claims:
                newest[claim["job"]] = max(newest.get(claim["job"], 0), int(claim["attempt"]))
                by_id[claim["_id"]] = claim
            held: t.List[Lease] = []
            lost: t.List[Lease] = []
            for lease in leases:
                own = by_id.get(lease.claim_id)
                ours = own is not None and claim_is_live(own, now) and newest.get(lease.job.id) == lease.attempt
                (held if ours else lost).append(lease)
            if held:
                self._claims.update_many(
                    {"_id": {"$in": [lease.claim_id for lease in held]}, "ended_at": None},
                    {"$set": {"lease_until": until}},
                )
                self._jobs.update_many(
                    {
                        "$or": [{"_id": lease.job.id, "attempts": lease.attempt} for lease in held],
                        "status": JobStatus.CLAIMED.value,
                    },
                    {"$set": {"lease_until": until}},
                )
            renewed = tuple(
                dataclasses.replace(lease, until=until, job=dataclasses.replace(lease.job, lease_until=until))
                for lease in held
            )
            return RenewResult(renewed, tuple(lost))

        return self.mongo.call(f"renewal of {len(leases)} leases in {self._claims_name}", run)

    def release(self, lease: Lease, error: str, delay: t.Optional[float] = None) -> datetime.datetime:
        """Give the job back as `queued`, claimable again after `delay` seconds (default: jittered
        exponential backoff over the attempts), with `error` as its `last_error`. Returns `not_before`.
        """
        now = self._now()
        wait = backoff(lease.attempt, self.backoff_base, self.backoff_cap, self._rng) if delay is None else delay
        not_before = to_stored_time(now + datetime.timedelta(seconds=max(0.0, wait)))
        fields = {"status": JobStatus.QUEUED.value, "not_before": not_before, "last_error": bounded_error(error)}
        self._finish(lease, fields, "released", now, settles=False)  # a held report waits for the next attempt
        return not_before

    def mark_spawned(self, lease: Lease, runner_name: str) -> None:
        """Record that a runner was started for the job; the lease ends."""
        now = self._now()
        # `spawned_runner` stays what this job's runner is called; reports may change `runner_name`.
        fields = {"status": JobStatus.SPAWNED.value, "runner_name": runner_name, "spawned_runner": runner_name}
        self._finish(lease, fields, "spawned", now)

    def mark_reported(
        self,
        lease: Lease,
        status: JobStatus,
        runner_name: t.Optional[str] = None,
        spawned_runner: t.Optional[str] = None,
    ) -> None:
        """Record what GitHub says of a job that no longer waits (it runs or ended); the lease ends.

        `spawned_runner`: the runner spawned for it all the same (its own was owed, see `_held_back`).
        """
        if status not in (JobStatus.IN_PROGRESS, JobStatus.COMPLETED):
            raise QueueError(f"job {lease.job.id}: only in_progress or completed can be reported, not {status.value!r}")
        now = self._now()
        fields: t.Dict[str, t.Any] = {"status": status.value}
        if runner_name:
            fields["runner_name"] = runner_name
        if spawned_runner:
            fields["spawned_runner"] = spawned_runner
        self._finish(lease, fields, "reported", now)

    def mark_dead(self, lease: Lease, reason: str) -> None:
        """Give up on the job with `reason` (its `last_error`); the lease ends."""
        now = self._now()
        fields = {"status": JobStatus.DEAD.value, "last_error": bounded_error(reason)}
        self._finish(lease, fields, "dead", now)

    def _finish(
        self,
        lease: Lease,
        fields: t.Mapping[str, t.Any],
        outcome: str,
        now: datetime.datetime,
        *,
        settles: bool = True,
    ) -> None:
        """Write the outcome of an attempt, then end its claim; LeaseLostError if it is not ours.

        An outcome that `settles` the job takes on its held report (see `_held_back`).
        """
        job_id = lease.job.id

        def run() -> None:
            latest = self._claims.find_one({"job": job_id}, sort=[("attempt", -1)])
            if latest is None or latest["_id"] != lease.claim_id or latest.get("ended_at") is not None:
                raise LeaseLostError(f"job {job_id}: the lease of attempt {lease.attempt} is no longer held")
            ended = {"lease_owner": None, "lease_until": None, "updated_at": now}
            # `queued` too: an expiry sweep may have raced the claim; `attempts` still says whose it is.
            active = [JobStatus.QUEUED.value, JobStatus.CLAIMED.value]
            ours = {"_id": job_id, "attempts": lease.attempt, "status": {"$in": active}}
            unheld = {HELD_REPORT: {"$exists": False}} if settles else {}
            held: object = None
            for _round in range(_MAX_MERGE_ROUNDS):
                if held is None or not settles:
                    write = self._jobs.update_one({**ours, **unheld}, {"$set": {**fields, **ended}})
                else:
                    # Reports held back while the job stayed claimable: the outcome takes them on.
                    settled = settled_with_held(fields, held)
                    write = self._jobs.update_one(
                        {**ours, HELD_REPORT: held}, {"$set": {**settled, **ended}, "$unset": {HELD_REPORT: ""}}
                    )
                if write.matched_count:
                    self._end_claim(job_id, lease.attempt, outcome, now)
                    return
                current = self._jobs.find_one({"_id": job_id}, {"attempts": 1, "status": 1, HELD_REPORT: 1})
                if current is None or current.get("attempts") != lease.attempt:
                    raise LeaseLostError(f"job {job_id}: another claim took over attempt {lease.attempt}")
                if current.get("status") not in active:
                    break
                held = current.get(HELD_REPORT)
            else:
                raise QueueError(f"job {job_id} in {self._jobs_name} kept changing during {_MAX_MERGE_ROUNDS} merges")
            # A report moved the job past `claimed` (GitHub runs it): nothing to undo.
            if fields.get("runner_name"):
                self._jobs.update_one(
                    {"_id": job_id, "runner_name": None}, {"$set": {"runner_name": fields["runner_name"]}}
                )
            if fields.get("spawned_runner"):
                self._jobs.update_one({"_id": job_id}, {"$set": {"spawned_runner": fields["spawned_runner"]}})
            self._end_claim(job_id, lease.attempt, outcome, now)

        self.mongo.call(f"{outcome} of job {job_id} in {self._jobs_name}", run)

    def expire_leases(self, pools: t.Optional[t.Sequence[str]] = None) -> int:
        """Return jobs whose lease expired (a crashed or stuck claimer) to `queued`; the count.

        Claiming takes over such jobs anyway; this keeps `claimed` in the depth honest.
        """
        now = self._now()
        query: t.Dict[str, t.Any] = {"status": JobStatus.CLAIMED.value, "lease_until": {"$lt": now}}
        if pools is not None:
            query["pool"] = {"$in": list(pools)}

        def run() -> int:
            expired = 0
            for raw in list(self._jobs.find(query, {"attempts": 1, "lease_owner": 1}).limit(_MAX_SWEEP)):
                latest = self._claims.find_one({"job": raw["_id"]}, sort=[("attempt", -1)])
                if latest is not None and claim_is_live(latest, now):
                    continue  # the holder renewed; only the job document lagged
                owner = raw.get("lease_owner") or "an unknown claimer"
                result = self._jobs.update_one(
                    {"_id": raw["_id"], "status": JobStatus.CLAIMED.value, "attempts": raw.get("attempts")},
                    {
                        "$set": {
                            "status": JobStatus.QUEUED.value,
                            "not_before": now,
                            "lease_owner": None,
                            "lease_until": None,
                            "last_error": bounded_error(f"the lease of {owner} expired"),
                            "updated_at": now,
                        }
                    },
                )
                if latest is not None:
                    self._end_claim(raw["_id"], int(latest["attempt"]), "expired", now)
                expired += result.modified_count
            return expired

        return self.mongo.call(f"expiry of leases in {self._jobs_name}", run)

    # Views -----------------------------------------------------------------------------------
    def get(self, job_id: str) -> t.Optional[Job]:
        """The job with `_id` `job_id`, None when absent; JobDocumentError when it is not a valid job."""
        raw = self.mongo.call(
            f"reading job {job_id} in {self._jobs_name}", lambda: self._jobs.find_one({"_id": job_id})
        )
        return None if raw is None else validate_job_document(raw)

    def unserved(self, pools: t.Sequence[str], received_before: datetime.datetime) -> t.Dict[str, int]:
        """Jobs per pool that no consumer serves (see `unserved_match`), received before `received_before`.

        One aggregation; pools without such jobs are absent. Reads only.
        """
        if not pools:
            return {}
        match = unserved_match(pools, received_before, self._now())

        def run() -> t.Dict[str, int]:
            groups = self._jobs.aggregate([{"$match": match}, {"$group": {"_id": "$pool", "count": {"$sum": 1}}}])
            return {str(group["_id"]): int(group["count"]) for group in groups}

        return self.mongo.call(f"count of unserved jobs in {self._jobs_name}", run)

    def spawned_with(self, runner_name: str, other_than: str) -> t.Optional[str]:
        """The id of the job, other than `other_than`, that runner `runner_name` was spawned for; None if none."""
        return self.mongo.call(
            f"finding the job of runner {runner_name} in {self._jobs_name}",
            lambda: self._spawned_with(runner_name, other_than),
        )

    def _spawned_with(self, runner_name: str, other_than: str) -> t.Optional[str]:
        raw = self._jobs.find_one({"spawned_runner": runner_name, "_id": {"$ne": other_than}}, {"_id": 1})
        return None if raw is None else str(raw["_id"])

    def depth(
        self, pools: t.Optional[t.Sequence[str]] = None, statuses: t.Optional[t.Sequence[str]] = None
    ) -> t.List[QueueDepth]:
        """Jobs per pool and status with the age of the oldest, sorted by pool and status order.

        One aggregation plus one indexed lookup per (pool, status) present; statuses with
        no jobs are absent. Reads only.
        """
        now = self._now()
        match: t.Dict[str, t.Any] = {}
        if pools is not None:
            match["pool"] = {"$in": list(pools)}
        if statuses is not None:
            match["status"] = {"$in": list(statuses)}

        def run() -> t.List[QueueDepth]:
            groups = self._jobs.aggregate(
                [{"$match": match}, {"$group": {"_id": {"pool": "$pool", "status": "$status"}, "count": {"$sum": 1}}}]
            )
            depths = []
            for group in groups:
                pool, status = group["_id"].get("pool"), group["_id"].get("status")
                # $min is not implemented by every MongoDB-compatible server: an indexed lookup instead.
                oldest_doc = self._jobs.find_one(
                    {"pool": pool, "status": status, "received_at": {"$type": "date"}},
                    {"received_at": 1},
                    sort=[("received_at", 1)],
                )
                oldest = to_stored_time(oldest_doc["received_at"]) if oldest_doc else None
                depths.append(
                    QueueDepth(
                        pool=str(pool),
                        status=str(status),
                        count=int(group["count"]),
                        oldest_received_at=oldest,
                        oldest_age=None if oldest is None else max(0.0, (now - oldest).total_seconds()),
                    )
                )
            return sorted(depths, key=_status_order_key)

        return self.mongo.call(f"depth of {self._jobs_name}", run)
