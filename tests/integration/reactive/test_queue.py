"""The job queue against the test suite's MongoDB-compatible server, with a clock the tests move."""

from __future__ import annotations

import datetime
import typing as t

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import QueueError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.job import (
    MAX_DELIVERY_IDS,
    JobKey,
    JobStatus,
    new_job,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.mongo import MongoAccess
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import (
    EnqueueOutcome,
    JobQueue,
    LeaseLostError,
)
from tests.integration.reactive.claimers import FakeClock
from tests.sandbox.mongo import free_port

pytestmark = pytest.mark.mongodb
TTL = 30.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queues(make_queue: t.Callable[..., JobQueue], clock: FakeClock) -> t.Callable[[str], JobQueue]:
    def make(owner: str) -> JobQueue:
        return make_queue(owner, clock=clock, lease_ttl=TTL, rng=lambda: 0.0)

    return make


def report(clock: FakeClock, job_id: int = 1, status: str = "queued", pool: str = "small", **kwargs: t.Any) -> t.Any:
    key = JobKey("api.github.com", "octo/hello", job_id)
    return new_job(key, pool=pool, labels=["self-hosted", "x64"], status=status, now=clock(), **kwargs)


def test_indexes_are_created_idempotently(queues: t.Callable[[str], JobQueue], raw_db: t.Any) -> None:
    queue = queues("a")
    queue.ensure_indexes()
    queue.ensure_indexes()
    assert {"pool_status_received_at", "status_lease_until"} <= set(raw_db["jobs"].index_information())
    assert "job_attempt" in raw_db["claims"].index_information()


def test_enqueue_is_idempotent_and_remembers_a_bounded_number_of_deliveries(
    queues: t.Callable[[str], JobQueue], clock: FakeClock
) -> None:
    queue = queues("router")
    assert queue.enqueue(report(clock, delivery_id="d-0")) is EnqueueOutcome.INSERTED
    assert queue.enqueue(report(clock, delivery_id="d-0")) is EnqueueOutcome.UNCHANGED
    for number in range(1, 30):
        assert queue.enqueue(report(clock, delivery_id=f"d-{number}")) is EnqueueOutcome.UPDATED
    job = queue.get("api.github.com/octo/hello/1")
    assert job is not None
    assert job.delivery_ids == tuple(f"d-{n}" for n in range(30 - MAX_DELIVERY_IDS, 30))
    assert queue.depth() == [queue.depth()[0]] and queue.depth()[0].count == 1


def test_reports_move_the_status_forward_only(queues: t.Callable[[str], JobQueue], clock: FakeClock) -> None:
    queue = queues("router")
    queue.enqueue(report(clock, status="waiting"))
    assert queue.enqueue(report(clock, status="queued")) is EnqueueOutcome.UPDATED
    assert queue.enqueue(report(clock, status="in_progress", runner_name="ci1-small-abc")) is EnqueueOutcome.UPDATED
    assert queue.enqueue(report(clock, status="queued", delivery_id="late")) is EnqueueOutcome.UPDATED
    job = queue.get("api.github.com/octo/hello/1")
    assert job is not None
    assert (job.status, job.runner_name, job.delivery_ids) == (JobStatus.IN_PROGRESS, "ci1-small-abc", ("late",))
    queue.enqueue(report(clock, status="completed"))
    queue.enqueue(report(clock, status="in_progress"))
    assert queue.get("api.github.com/octo/hello/1").status is JobStatus.COMPLETED  # type: ignore[union-attr]


def test_a_redelivered_queued_webhook_leaves_a_claimed_job_with_its_holder(
    queues: t.Callable[[str], JobQueue], clock: FakeClock
) -> None:
    queue = queues("a")
    queue.enqueue(report(clock))
    (lease,) = queue.claim(["small"]).leases
    assert queue.enqueue(report(clock, delivery_id="again")) is EnqueueOutcome.UPDATED
    assert queue.get(lease.job.id).status is JobStatus.CLAIMED  # type: ignore[union-attr]
    assert queue.claim(["small"]).leases == ()
    queue.mark_spawned(lease, "ci1-small-job1")
    job = queue.get(lease.job.id)
    assert job is not None
    assert (job.status, job.runner_name, job.lease_owner) == (JobStatus.SPAWNED, "ci1-small-job1", None)


def test_claims_serve_only_the_given_pools(queues: t.Callable[[str], JobQueue], clock: FakeClock) -> None:
    queue = queues("a")
    for number, pool in ((1, "small"), (2, "large"), (3, "small")):
        queue.enqueue(report(clock, job_id=number, pool=pool))
        clock.advance(1)
    leases = queue.claim(["small"], limit=5).leases
    assert sorted(lease.job.job_id for lease in leases) == [1, 3]
    assert {lease.attempt for lease in leases} == {1}
    assert queue.claim(["small"], limit=5).leases == ()
    assert [lease.job.job_id for lease in queue.claim(["large", "small"]).leases] == [2]


def test_release_backs_off_and_the_next_claim_is_the_next_attempt(
    queues: t.Callable[[str], JobQueue], clock: FakeClock
) -> None:
    queue = queues("a")
    queue.enqueue(report(clock))
    (lease,) = queue.claim(["small"]).leases
    not_before = queue.release(lease, "pool small is at max_runners")
    # rng 0 keeps half of the first step (backoff_base 5 s).
    assert not_before == clock() + datetime.timedelta(seconds=2.5)
    job = queue.get(lease.job.id)
    assert job is not None
    assert (job.status, job.attempts, job.last_error) == (JobStatus.QUEUED, 1, "pool small is at max_runners")
    assert queue.claim(["small"]).leases == ()
    clock.advance(3)
    (again,) = queue.claim(["small"]).leases
    assert again.attempt == 2
    with pytest.raises(LeaseLostError):
        queue.release(lease, "the old lease is over")


def test_mark_dead_keeps_the_reason_and_ends_the_lease(queues: t.Callable[[str], JobQueue], clock: FakeClock) -> None:
    queue = queues("a")
    queue.enqueue(report(clock))
    (lease,) = queue.claim(["small"]).leases
    queue.mark_dead(lease, "job not found (404)")
    job = queue.get(lease.job.id)
    assert job is not None
    assert (job.status, job.last_error, job.lease_until) == (JobStatus.DEAD, "job not found (404)", None)
    with pytest.raises(LeaseLostError):
        queue.mark_spawned(lease, "too-late")
    clock.advance(3600)
    assert queue.claim(["small"]).leases == ()


def test_a_crashed_claimers_lease_expires_and_another_claims_the_job(
    queues: t.Callable[[str], JobQueue], clock: FakeClock
) -> None:
    crashed, survivor = queues("crashed"), queues("survivor")
    crashed.enqueue(report(clock))
    (stale,) = crashed.claim(["small"]).leases
    clock.advance(TTL - 1)
    assert survivor.claim(["small"]).leases == ()
    clock.advance(2)
    (lease,) = survivor.claim(["small"]).leases
    assert (lease.attempt, lease.owner) == (2, "survivor")
    assert crashed.renew([stale]).lost == (stale,)
    with pytest.raises(LeaseLostError):
        crashed.mark_spawned(stale, "ci1-small-job1")
    survivor.mark_spawned(lease, "ci1-small-job1")
    assert survivor.get(lease.job.id).status is JobStatus.SPAWNED  # type: ignore[union-attr]


def test_renewal_keeps_a_lease_past_its_first_term(queues: t.Callable[[str], JobQueue], clock: FakeClock) -> None:
    holder, other = queues("holder"), queues("other")
    holder.enqueue(report(clock))
    (lease,) = holder.claim(["small"]).leases
    for _renewal in range(3):
        clock.advance(TTL / 2)
        renewed = holder.renew([lease])
        assert renewed.lost == ()
        (lease,) = renewed.held
        assert lease.until == clock() + datetime.timedelta(seconds=TTL)
        assert other.claim(["small"]).leases == ()
    clock.advance(TTL + 1)
    assert holder.renew([lease]).lost == (lease,)  # expired: renewing cannot revive it


def test_expiry_sweep_returns_an_abandoned_job_to_the_queue(
    queues: t.Callable[[str], JobQueue], clock: FakeClock
) -> None:
    crashed, survivor = queues("crashed"), queues("survivor")
    crashed.enqueue(report(clock))
    (stale,) = crashed.claim(["small"]).leases
    assert survivor.expire_leases() == 0
    clock.advance(TTL + 1)
    assert survivor.expire_leases() == 1
    job = survivor.get(stale.job.id)
    assert job is not None
    assert (job.status, job.lease_owner, job.last_error) == (JobStatus.QUEUED, None, "the lease of crashed expired")
    with pytest.raises(LeaseLostError):
        crashed.mark_spawned(stale, "x")
    (lease,) = survivor.claim(["small"]).leases
    assert lease.attempt == 2


def test_a_claim_left_by_a_claimer_that_crashed_before_updating_the_job_is_skipped(
    queues: t.Callable[[str], JobQueue], clock: FakeClock, raw_db: t.Any
) -> None:
    queue = queues("a")
    job = report(clock)
    queue.enqueue(job)
    raw_db["claims"].insert_one(
        {"_id": f"{job.id}#1", "job": job.id, "attempt": 1, "owner": "gone", "lease_until": clock(), "ended_at": None}
    )
    assert queue.claim(["small"]).leases == ()  # that claim's lease runs until now: still live
    clock.advance(1)
    (lease,) = queue.claim(["small"]).leases
    assert lease.attempt == 2
    assert [c["_id"] for c in raw_db["claims"].find()] == [f"{job.id}#2"]


def test_a_job_document_lagging_behind_a_live_lease_does_not_hand_the_job_over(
    queues: t.Callable[[str], JobQueue], clock: FakeClock, raw_db: t.Any
) -> None:
    holder, other = queues("holder"), queues("other")
    holder.enqueue(report(clock))
    (lease,) = holder.claim(["small"]).leases
    # The claim is live, but the job document says the lease ran out (its renewal write was lost).
    raw_db["jobs"].update_one({"_id": lease.job.id}, {"$set": {"lease_until": clock() - datetime.timedelta(seconds=1)}})
    assert other.claim(["small"]).leases == ()
    assert other.expire_leases() == 0
    assert raw_db["claims"].count_documents({"owner": "other"}) == 0
    holder.mark_spawned(lease, "ci1-small-job1")


def test_a_claimer_with_a_stale_listing_does_not_claim_a_job_spawned_meanwhile(
    queues: t.Callable[[str], JobQueue], clock: FakeClock, raw_db: t.Any
) -> None:
    first, late = queues("first"), queues("late")
    first.enqueue(report(clock))
    listing = raw_db["jobs"].find_one({})  # what `late` read before `first` claimed and spawned
    (lease,) = first.claim(["small"]).leases
    first.mark_spawned(lease, "ci1-small-job1")
    assert late._claim_candidate(listing, clock(), None) is None
    assert raw_db["claims"].count_documents({"owner": "late"}) == 0
    assert first.get(lease.job.id).status is JobStatus.SPAWNED  # type: ignore[union-attr]


def test_poison_documents_go_to_dead_with_the_field_named(
    queues: t.Callable[[str], JobQueue], clock: FakeClock, raw_db: t.Any
) -> None:
    queue = queues("a")
    good = report(clock, job_id=9)
    queue.enqueue(good)
    base = dict(report(clock, job_id=1).to_document())
    poison = [
        {**base, "labels": [f"l{i}" for i in range(500)]},
        {**base, "_id": "api.github.com/octo/hello/2", "job_id": 2, "repository": "not a repository"},
        {**base, "_id": "api.github.com/octo/hello/3", "job_id": "three"},
        {**base, "_id": "evil.example.com/octo/hello/4", "job_id": 5},
    ]
    raw_db["jobs"].insert_many(poison)
    result = queue.claim(["small"], limit=10)
    assert [lease.job.id for lease in result.leases] == [good.id]
    reasons = {dead.id: dead.reason for dead in result.dead}
    assert reasons == {
        base["_id"]: "invalid job document: labels: 500 labels, at most 100 are allowed",
        "api.github.com/octo/hello/2": "invalid job document: repository: must be owner/repo, got 'not a repository'",
        "api.github.com/octo/hello/3": "invalid job document: job_id: must be a positive integer, got 'three'",
        "evil.example.com/octo/hello/4": "invalid job document: _id: 'evil.example.com/octo/hello/4' does not name job 5 of octo/hello",
    }
    stored = {doc["_id"]: (doc["status"], doc["last_error"]) for doc in raw_db["jobs"].find({"status": "dead"})}
    assert stored == {job_id: ("dead", reason) for job_id, reason in reasons.items()}
    assert queue.claim(["small"], limit=10) == type(result)()


def test_a_job_out_of_attempts_goes_to_dead(queues: t.Callable[[str], JobQueue], clock: FakeClock) -> None:
    queue = queues("a")
    queue.enqueue(report(clock))
    for _attempt in range(2):
        (lease,) = queue.claim(["small"], max_attempts=2).leases
        queue.release(lease, "OpenStack create failed (HTTP 503)", delay=0)
    result = queue.claim(["small"], max_attempts=2)
    assert result.leases == ()
    assert [d.reason for d in result.dead] == [
        "gave up after 2 attempts; last error: OpenStack create failed (HTTP 503)"
    ]
    assert queue.get(result.dead[0].id).status is JobStatus.DEAD  # type: ignore[union-attr]


def test_depth_and_oldest_age_per_pool_and_status(queues: t.Callable[[str], JobQueue], clock: FakeClock) -> None:
    queue = queues("a")
    for number, pool in ((1, "small"), (2, "small"), (3, "large")):
        queue.enqueue(report(clock, job_id=number, pool=pool))
        clock.advance(10)
    queue.claim(["large"])
    clock.advance(5)
    assert [d.to_dict() for d in queue.depth()] == [
        {
            "pool": "large",
            "status": "claimed",
            "count": 1,
            "oldest_received_at": "2026-03-01T12:00:20.000000Z",
            "oldest_age": 15.0,
        },
        {
            "pool": "small",
            "status": "queued",
            "count": 2,
            "oldest_received_at": "2026-03-01T12:00:00.000000Z",
            "oldest_age": 35.0,
        },
    ]
    assert [(d.pool, d.status) for d in queue.depth(pools=["small"], statuses=["queued"])] == [("small", "queued")]
    assert queue.depth(pools=["none"]) == []


def test_an_unreachable_server_fails_calls_with_a_queue_error() -> None:
    queue = JobQueue(MongoAccess(f"mongodb://127.0.0.1:{free_port()}/", server_timeout=0.5))
    with pytest.raises(QueueError, match=r"^MongoDB depth of github_runners\.jobs: "):
        queue.depth()
    with pytest.raises(QueueError, match=r"^MongoDB connection string is not usable") as bad_uri:
        MongoAccess("mongodb://user:secret@:::bad")
    assert "secret" not in str(bad_uri.value)


def test_a_job_taken_by_another_jobs_runner_stays_claimable_until_its_own_runner_is_spawned(
    queues: t.Callable[[str], JobQueue], clock: FakeClock
) -> None:
    """GitHub hands job 2 to the runner spawned for job 1: job 1 now waits without one, so job 2's is owed."""
    router, consumer = queues("router"), queues("consumer")
    router.enqueue(report(clock, 1))
    router.enqueue(report(clock, 2))
    (lease,) = [lease for lease in consumer.claim(["small"], limit=2).leases if lease.job.job_id == 1]
    consumer.mark_spawned(lease, "ci-small-000000000001")
    router.enqueue(report(clock, 2, status="in_progress", runner_name="ci-small-000000000001"))
    held = consumer.get(report(clock, 2).id)
    assert held is not None and held.status in (JobStatus.QUEUED, JobStatus.CLAIMED) and held.runner_name is None
    assert consumer.spawned_with("ci-small-000000000001", other_than=held.id) == report(clock, 1).id
    # A runner spawned for no other job (a min_idle one): the report moves the job on as usual.
    router.enqueue(report(clock, 3))
    router.enqueue(report(clock, 3, status="in_progress", runner_name="ci-small-00000000000f"))
    moved = consumer.get(report(clock, 3).id)
    assert moved is not None and moved.status is JobStatus.IN_PROGRESS


@pytest.mark.parametrize("settle", ["spawned", "reported in_progress", "released, then spawned"])
def test_the_progress_held_back_for_a_claimable_job_is_taken_on_when_its_attempt_settles(
    queues: t.Callable[[str], JobQueue], clock: FakeClock, raw_db: t.Any, settle: str
) -> None:
    """GitHub sends each report once: what it said while the job stayed claimable is not lost."""
    router, consumer, first, second = two_claimed(queues, clock)
    consumer.mark_spawned(first, "ci-small-000000000001")
    # Job 2 runs and ends on job 1's runner while the consumer spawns job 2's owed runner.
    started, completed = clock(), clock() + datetime.timedelta(seconds=5)
    other = "ci-small-000000000001"
    router.enqueue(report(clock, 2, status="in_progress", runner_name=other, started_at=started))
    router.enqueue(report(clock, 2, status="completed", runner_name=other, started_at=started, completed_at=completed))
    router.enqueue(report(clock, 2, status="in_progress", runner_name=other, started_at=started))  # late, behind
    held = consumer.get(second.job.id)
    assert held is not None and held.status is JobStatus.CLAIMED, "the job stopped being claimable"
    if settle == "spawned":
        consumer.mark_spawned(second, "ci-small-000000000002")
    elif settle.startswith("released"):  # the pool was full: the owed runner is still owed
        consumer.release(second, "pool small is at max_runners", delay=0)
        again = consumer.get(second.job.id)
        assert again is not None and again.status is JobStatus.QUEUED
        assert raw_db["jobs"].find_one({"_id": second.job.id})["held_report"]["status"] == "completed"
        (retry,) = consumer.claim(["small"]).leases
        consumer.mark_spawned(retry, "ci-small-000000000002")
    else:  # what the consumer's own look at GitHub said, before the job ended
        consumer.mark_reported(second, JobStatus.IN_PROGRESS, other, spawned_runner="ci-small-000000000002")
    settled = consumer.get(second.job.id)
    assert settled is not None
    assert (settled.status, settled.runner_name) == (JobStatus.COMPLETED, other)
    assert (settled.started_at, settled.completed_at) == (started, completed)
    raw = raw_db["jobs"].find_one({"_id": second.job.id})
    assert raw["spawned_runner"] == "ci-small-000000000002" and "held_report" not in raw
    # Later reports move the job as usual; nothing is claimable.
    assert router.enqueue(report(clock, 2, status="completed", runner_name=other)) is EnqueueOutcome.UNCHANGED
    assert not consumer.claim(["small"]).leases


def test_a_runner_named_with_its_claim_is_known_as_its_jobs_before_its_spawn_is_recorded(
    queues: t.Callable[[str], JobQueue], clock: FakeClock
) -> None:
    router, consumer, first, second = two_claimed(queues, clock, runner_name=lambda job: f"ci-small-{job.job_id:012x}")
    # Job 1's runner, registered but its spawn not yet recorded, takes job 2 at once.
    router.enqueue(report(clock, 2, status="in_progress", runner_name="ci-small-000000000001"))
    assert consumer.spawned_with("ci-small-000000000001", other_than=second.job.id) == first.job.id
    held = consumer.get(second.job.id)
    assert held is not None and held.status is JobStatus.CLAIMED, "job 2's own runner is owed: it stays claimable"


def two_claimed(queues: t.Callable[[str], JobQueue], clock: FakeClock, **claim: t.Any) -> tuple[t.Any, ...]:
    """A router and a consumer, and the consumer's leases on jobs 1 and 2 the router queued."""
    router, consumer = queues("router"), queues("consumer")
    router.enqueue(report(clock, 1))
    router.enqueue(report(clock, 2))
    first, second = sorted(consumer.claim(["small"], limit=2, **claim).leases, key=lambda lease: lease.job.job_id)
    return router, consumer, first, second
