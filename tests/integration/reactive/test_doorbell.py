"""The doorbell against the test MongoDB server: queueing a job wakes the listeners of its pool."""

from __future__ import annotations

import datetime
import logging
import threading
import typing as t

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.doorbell import DEFAULT_COLLECTION
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.job import JobKey, new_job
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import JobQueue

UTC = datetime.UTC


class Listener:
    """A doorbell listener in a thread, counting the wake-ups it got."""

    def __init__(self, queue: JobQueue, pools: t.Collection[str]) -> None:
        self.stop = threading.Event()
        self.woken = threading.Semaphore(0)
        self.count = 0
        self._counting = threading.Lock()
        self.thread = threading.Thread(target=queue.doorbell.listen, args=(pools, self._wake, self.stop), daemon=True)

    def _wake(self) -> None:
        with self._counting:
            self.count += 1
        self.woken.release()

    def __enter__(self) -> Listener:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the listener did not stop"

    def wait(self, timeout: float = 30.0) -> bool:
        return self.woken.acquire(timeout=timeout)


def queued(pool: str, number: int, status: str = "queued") -> t.Any:
    return new_job(
        JobKey("api.github.com", "octo/app", number),
        pool=pool,
        labels=["x64"],
        status=status,
        now=datetime.datetime.now(UTC),
    )


def test_the_wakeups_collection_is_capped_and_created_idempotently(
    make_queue: t.Callable[..., JobQueue], raw_db: t.Any
) -> None:
    queue = make_queue(doorbell=True)
    queue.ensure_indexes()
    queue.doorbell.ensure()
    options = raw_db[DEFAULT_COLLECTION].options()
    assert options.get("capped") is True
    assert options.get("max") == 1000


def test_a_queued_job_wakes_the_listeners_of_its_pool_only(make_queue: t.Callable[..., JobQueue]) -> None:
    router = make_queue("router", doorbell=True)
    with (
        Listener(make_queue("a", doorbell=True), ["small"]) as small,
        Listener(make_queue("b", doorbell=True), ["large"]) as large,
    ):
        # A listener's cursor may start on the rings written before it: wait until it is quiet.
        router.doorbell.ring("small")
        router.doorbell.ring("large")
        assert small.wait() and large.wait()
        while small.wait(timeout=2) or large.wait(timeout=0.1):
            pass
        before_small, before_large = small.count, large.count

        router.enqueue(queued("small", 1))
        assert small.wait(), "queueing a job did not wake its pool's listener"
        router.enqueue(queued("small", 1))  # the same report again: nothing new to claim
        router.enqueue(queued("small", 1, status="in_progress"))  # not claimable
        router.doorbell.ring("medium")
        router.enqueue(queued("small", 2))
        assert small.wait()
        assert not small.wait(timeout=3)
        # Listener "large" heard nothing for its pool.
        assert large.count == before_large
        assert small.count - before_small == 2


def test_a_listener_that_cannot_tail_says_so_once_and_returns_when_stopped(
    make_queue: t.Callable[..., JobQueue], raw_db: t.Any, caplog: pytest.LogCaptureFixture
) -> None:
    raw_db.create_collection(DEFAULT_COLLECTION)  # not capped: a tailable cursor is refused
    queue = make_queue(doorbell=True)
    with caplog.at_level(logging.WARNING, logger="selfhosted.github_runners"):
        queue.ensure_indexes()  # a warning, not a failure
        queue.enqueue(queued("small", 1))  # the ring goes to the plain collection; the job is queued
        with Listener(queue, ["small"]) as listener:
            assert not listener.wait(timeout=2)
    assert queue.claim(["small"]).leases, "the job was not queued"
    messages = [r.getMessage() for r in caplog.records]
    assert sum("cannot be read" in m for m in messages) == 1, messages
    assert any("is not a capped collection" in m and "polling alone" in m for m in messages), messages


def test_rings_written_together_still_wake_every_pool(make_queue: t.Callable[..., JobQueue]) -> None:
    router = make_queue("router", doorbell=True)
    with Listener(make_queue("a", doorbell=True), ["p7"]) as listener:
        router.doorbell.ring("p7")
        assert listener.wait()
        while listener.wait(timeout=2):
            pass  # the rings the cursor started on
        for number in range(200):
            router.doorbell.ring(f"p{number % 10}")
        assert listener.wait(), "a ring written with others was lost"
