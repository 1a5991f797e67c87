"""The consumer serves queued jobs: one runner per job, within max_runners, beside the reconcile."""

from __future__ import annotations

import time
import typing as t

import pytest

from tests.chaos import invariants
from tests.integration.consumer.conftest import ReactiveWorld

pytestmark = pytest.mark.sandbox


def assert_one_runner_per_job(world: ReactiveWorld, pool: dict[str, t.Any], jobs: int) -> None:
    """Never two live runners of one job, and no more runners than jobs plus retried attempts.

    A retry (a lost lease, a failed write) may find the job still queued because its first runner
    took another job: it is owed a runner again, under the same name.
    """
    events = world.sandbox.events()
    assert invariants.job_on_two_runners(events, 0.0) == []
    assert invariants.vms_of_one_name(events, 0.0, {}) == []
    creates = world.creates_per_name(pool)
    queue = world.queue("check")
    retried = queue.mongo.call("count", lambda: queue._jobs.count_documents({"attempts": {"$gt": 1}}))
    # Each job's runner is made once, or again on a retried attempt; a job GitHub already ran on a
    # runner that was not recorded as another job's costs none.
    assert len(creates) <= jobs and sum(creates.values()) <= jobs + retried, (creates.most_common(3), retried)


def test_each_job_gets_one_runner_and_nothing_is_left(world: ReactiveWorld) -> None:
    pool = world.pool(max_runners=5)
    world.start_reconcile([pool])
    world.start_consumer([pool])
    ids = world.enqueue(pool, 5, duration=0.3)
    world.wait_completed(ids, timeout=120)
    creates = world.creates_per_name(pool)
    assert len(creates) == 5 and set(creates.values()) == {1}
    queue = world.queue("check")
    assert {queue.get(f"{world.api_host}/{world.repository.lower()}/{i}").status.value for i in ids} == {"spawned"}
    # The reconcile deletes the VMs whose jobs ended; none is left.
    world.core.wait_for("no VM left", lambda: not world.core.servers(pool["name"]), timeout=120)
    assert not [d for d in world.deletions if d[0] not in ("finished",)], world.deletions


@pytest.mark.timeout(1200)
def test_200_jobs_never_exceed_max_runners_and_all_run(world: ReactiveWorld) -> None:
    # A registration grace long enough for the consumer's census to count between listings.
    pool = world.pool(max_runners=50, bootstrap_timeout=120, registration_grace=20)
    breaches: list[str] = []
    world.watch_max_runners([pool], breaches)
    world.start_reconcile([pool], interval=1.0)
    world.start_consumer([pool], concurrency=16)
    ids = world.enqueue(pool, 200, duration=0.5)
    world.wait_completed(ids, timeout=240)
    assert breaches == []
    assert_one_runner_per_job(world, pool, 200)
    assert not [d for d in world.deletions if d[0] in ("orphan", "failed", "scale_down")], world.deletions


@pytest.mark.timeout(900)
@pytest.mark.parametrize("consumers", [2, 4])
def test_consumers_side_by_side_with_the_reconcile(world: ReactiveWorld, consumers: int) -> None:
    pool = world.pool(max_runners=10, bootstrap_timeout=120, registration_grace=20)
    breaches: list[str] = []
    world.watch_max_runners([pool], breaches)
    world.start_reconcile([pool], interval=0.5)
    for n in range(consumers):
        world.start_consumer([pool], owner=f"consumer-{n}", concurrency=4)
    ids = world.enqueue(pool, 40, duration=0.3)
    world.wait_completed(ids, timeout=600)
    assert breaches == []
    assert_one_runner_per_job(world, pool, 40)
    # Freshly spawned runners are neither orphans nor failed nor scaled down by the reconcile.
    assert not [d for d in world.deletions if d[0] in ("orphan", "failed", "scale_down")], world.deletions


@pytest.mark.parametrize("doorbell", [True, False])
def test_a_queued_job_is_claimed_without_waiting_for_the_poll(world: ReactiveWorld, doorbell: bool) -> None:
    """With the doorbell, a minute-long poll does not delay a job; without it, the poll alone serves."""
    pool = world.pool(max_runners=5)
    poll = 60.0 if doorbell else 0.5
    world.doorbell = doorbell
    world.start_consumer([pool], poll_interval=poll)
    # The first job may be claimed by the consumer's first round; once it is spawned, the consumer
    # has claimed again, found nothing and waits for the poll (or a wake-up).
    world.enqueue(pool, 1, duration=60)
    world.core.wait_for("the first runner", lambda: len(world.creates_per_name(pool)) == 1, timeout=60)
    time.sleep(2.0)
    world.enqueue(pool, 1, duration=60)
    # Well under the 60 s poll: only a wake-up gets the second job its runner in time.
    world.core.wait_for("the second runner", lambda: len(world.creates_per_name(pool)) == 2, timeout=30)
    assert not world.errors, world.errors


def test_jobs_one_after_another_share_the_pools_server_listing(world: ReactiveWorld) -> None:
    """The census in the pool's state stands in for a listing for a few seconds: not one listing per job."""
    pool = world.pool(max_runners=20, registration_grace=60)  # a census lasts half of it, at most 10 s
    world.start_consumer([pool])
    world.sandbox.reset_counters()
    for served in range(1, 9):
        world.enqueue(pool, 1, duration=60)
        world.core.wait_for(f"runner {served}", lambda n=served: len(world.creates_per_name(pool)) == n, timeout=60)
    listings = world.sandbox.calls("nova", "GET", "/servers/detail")
    assert 1 <= listings < 8, listings
    assert not world.errors, world.errors
