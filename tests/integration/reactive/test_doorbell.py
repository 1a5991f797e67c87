"""The doorbell against the test MongoDB server: queueing a job wakes the listeners of its pool."""

from __future__ import annotations

import datetime
import logging
import threading
import time
import typing as t

import pymongo.errors
import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.doorbell import (
    DEFAULT_COLLECTION,
    Doorbell,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.job import JobKey, new_job
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import JobQueue

UTC = datetime.UTC


class Listener:
    """A doorbell listener in a thread, counting the wake-ups it got."""

    def __init__(self, queue: JobQueue | Doorbell, pools: t.Collection[str]) -> None:
        self.stop = threading.Event()
        self.woken = threading.Semaphore(0)
        self.count = 0
        self._counting = threading.Lock()
        doorbell = queue if isinstance(queue, Doorbell) else queue.doorbell
        self.thread = threading.Thread(target=doorbell.listen, args=(pools, self._wake, self.stop), daemon=True)

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


class BreakableDoorbell(Doorbell):
    """A doorbell whose listening cursor fails on its next read when told, as a dropped connection ends it."""

    def __init__(self, doorbell: Doorbell) -> None:
        super().__init__(doorbell.mongo, doorbell.database, doorbell.collection)
        self.retry_seconds = 0.1
        self.fail_next_read = threading.Event()
        self.reads: list[str] = []  # the commands answered, in order: "find" or "getMore"

    def _client(self, uri: str) -> t.Any:
        return _BreakingClient(super()._client(uri), self)


class _BreakingClient:
    def __init__(self, client: t.Any, doorbell: BreakableDoorbell) -> None:
        self._client, self._doorbell = client, doorbell

    def __getitem__(self, name: str) -> _BreakingDatabase:
        return _BreakingDatabase(self._client[name], self._doorbell)

    def close(self) -> None:
        self._client.close()


class _BreakingDatabase:
    def __init__(self, db: t.Any, doorbell: BreakableDoorbell) -> None:
        self._db, self._doorbell = db, doorbell

    def __getitem__(self, name: str) -> t.Any:
        return self._db[name]

    def command(self, spec: dict[str, t.Any]) -> t.Any:
        verb = next(iter(spec))
        if verb == "getMore" and self._doorbell.fail_next_read.is_set():
            self._doorbell.fail_next_read.clear()
            raise pymongo.errors.AutoReconnect("the connection was dropped (test)")
        reply = self._db.command(spec)
        if verb in ("find", "getMore"):
            self._doorbell.reads.append(verb)
        return reply


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


def test_a_reopened_cursor_wakes_for_the_rings_it_missed_not_for_those_it_heard(
    make_queue: t.Callable[..., JobQueue],
) -> None:
    router = make_queue("router", doorbell=True)
    doorbell = BreakableDoorbell(make_queue("a", doorbell=True).doorbell)
    with Listener(doorbell, ["small"]) as small:
        router.doorbell.ring("small")
        assert small.wait()
        while small.wait(timeout=2):
            pass  # the rings the cursor started on
        heard = small.count

        doorbell.fail_next_read.set()
        wait_until(lambda: doorbell.reads.count("find") == 2, "the listener reopened its cursor")
        reopened_at = len(doorbell.reads)
        # Two reads of the new cursor: its first batch and the rest, where old rings would be.
        wait_until(lambda: len(doorbell.reads) >= reopened_at + 2, "the new cursor read on")
        assert small.count == heard, "the reopened cursor woke the listener for rings it had heard"

        doorbell.fail_next_read.set()
        wait_until(lambda: doorbell.reads.count("find") == 3, "the listener reopened its cursor again")
        router.doorbell.ring("small")
        assert small.wait(), "the reopened cursor did not hear a new ring"
        assert small.count == heard + 1


def wait_until(predicate: t.Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)
