"""Pool locks: a local flock and a MongoDB lease, each with two contenders, and their saved state."""

from __future__ import annotations

import os
import pathlib
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
import typing as t
import uuid

import pymongo
import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import LockError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._interrupt import Stopped, StopRequest
from ansible_collections.selfhosted.github_runners.plugins.module_utils._lock import (
    FileLock,
    Heartbeat,
    MongoLease,
    PoolLock,
)
from tests.sandbox.mongo import MongoServer, free_port

# --- FileLock -----------------------------------------------------------------------------


def test_file_lock_is_a_pool_lock(tmp_path: pathlib.Path) -> None:
    lock: PoolLock = FileLock(str(tmp_path / "p.lock"))
    with lock as held:
        assert held is lock


def test_file_lock_creates_its_directory_and_records_the_holder(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "locks" / "ci-small.lock"
    with FileLock(str(path)) as lock:
        lock.ensure_held()
        assert f'"pid": {os.getpid()}' in path.read_text()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(LockError, match="not held"):
        lock.ensure_held()
    assert path.read_text() == ""  # the holder record goes with the lock


def test_second_holder_in_another_thread_waits_then_fails_naming_the_holder(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "p.lock")
    errors: list[str] = []

    def contend() -> None:
        try:
            with FileLock(path, timeout=0.2, poll_interval=0.05):
                errors.append("acquired")
        except LockError as exc:
            errors.append(str(exc))

    with FileLock(path):
        thread = threading.Thread(target=contend)
        thread.start()
        thread.join(10)
    assert len(errors) == 1
    assert f"pid {os.getpid()}" in errors[0]
    assert socket.gethostname() in errors[0]


def test_waiter_gets_the_lock_when_the_holder_releases_in_time(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "p.lock")
    holder = FileLock(path)
    holder.acquire()
    timer = threading.Timer(0.2, holder.release)
    timer.start()
    with FileLock(path, timeout=10, poll_interval=0.05) as waiter:
        waiter.ensure_held()
    timer.join()


def test_threads_never_overlap_inside_the_lock(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "p.lock")
    inside = 0
    overlaps = 0
    guard = threading.Lock()

    def work() -> None:
        nonlocal inside, overlaps
        for _attempt in range(5):
            with FileLock(path, timeout=30, poll_interval=0.005):
                with guard:
                    inside += 1
                    overlaps += inside > 1
                time.sleep(0.002)
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=work) for _attempt in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert overlaps == 0


HOLD_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from ansible_collections.selfhosted.github_runners.plugins.module_utils._lock import FileLock
    lock = FileLock(sys.argv[1])
    lock.acquire()
    print("held", flush=True)
    sys.stdin.readline()  # hold until told (or killed)
    """
)


def test_lock_held_by_another_process_and_freed_when_it_dies(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "p.lock")
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_SCRIPT, path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},  # the child imports the collection too
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(LockError, match=f"pid {child.pid}"):
            FileLock(path, timeout=0.2, poll_interval=0.05).acquire()
        child.kill()  # a crash: the kernel drops the flock
        child.wait(10)
        with FileLock(path, timeout=5, poll_interval=0.05) as lock:
            lock.ensure_held()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)


def test_file_state_round_trip_atomic_and_private(tmp_path: pathlib.Path) -> None:
    lock = FileLock(str(tmp_path / "ci-small.lock"))
    assert lock.state_path == str(tmp_path / "ci-small.state.json")
    with lock:
        assert lock.load_state() == {}
        lock.save_state({"history": {"r1": {"seen_online": True}}})
        lock.save_state({"history": {"r2": {"seen_online": False}}})
    assert FileLock(str(tmp_path / "ci-small.lock")).load_state() == {"history": {"r2": {"seen_online": False}}}
    assert stat.S_IMODE(os.stat(lock.state_path).st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ci-small.lock", "ci-small.state.json"]


def test_file_state_needs_the_lock_and_survives_garbage(tmp_path: pathlib.Path) -> None:
    lock = FileLock(str(tmp_path / "p.lock"))
    with pytest.raises(LockError, match="not held"):
        lock.save_state({"a": 1})
    pathlib.Path(lock.state_path).write_text("{not json")
    assert lock.load_state() == {}


# --- MongoLease (a real MongoDB-compatible server) ---------------------------------------------


@pytest.fixture
def lease_collection(mongodb: MongoServer) -> t.Iterator[str]:
    name = f"locks_{uuid.uuid4().hex[:8]}"
    yield name
    client: pymongo.MongoClient[t.Dict[str, t.Any]] = pymongo.MongoClient(mongodb.uri, serverSelectionTimeoutMS=5000)
    client["ghr_test"][name].drop()
    client.close()


def lease(mongodb: MongoServer, collection: str, **kwargs: t.Any) -> MongoLease:
    kwargs.setdefault("wait_timeout", 0.3)
    kwargs.setdefault("poll_interval", 0.05)
    return MongoLease(mongodb.uri, "ghr_test", collection, "ci-small", **kwargs)


@pytest.mark.mongodb
def test_lease_excludes_another_owner_until_released(mongodb: MongoServer, lease_collection: str) -> None:
    first = lease(mongodb, lease_collection, owner="host-a:1")
    second = lease(mongodb, lease_collection, owner="host-b:2")
    with first, pytest.raises(LockError, match="held by host-a:1 until"):
        second.acquire()
    with second:
        second.ensure_held()


@pytest.mark.mongodb
def test_expired_lease_is_taken_over_and_the_old_holder_learns_it(mongodb: MongoServer, lease_collection: str) -> None:
    first = lease(mongodb, lease_collection, owner="host-a:1", ttl=0.2)
    first.acquire()
    time.sleep(0.4)
    second = lease(mongodb, lease_collection, owner="host-b:2")
    second.acquire()
    with pytest.raises(LockError, match="lost"):
        first.save_state({"history": "stale"})
    with pytest.raises(LockError, match="lost"):
        first.renew()  # and never renewed again
    second.save_state({"history": "fresh"})
    second.release()
    assert lease(mongodb, lease_collection).load_state() == {"history": "fresh"}


@pytest.mark.mongodb
def test_lease_renewal_keeps_it(mongodb: MongoServer, lease_collection: str) -> None:
    first = lease(mongodb, lease_collection, owner="host-a:1", ttl=1.5)
    with first:
        for _attempt in range(3):  # 1.8 s in all, past the ttl
            time.sleep(0.6)
            first.renew()
        with pytest.raises(LockError):
            lease(mongodb, lease_collection, owner="host-b:2").acquire()


@pytest.mark.mongodb
def test_lease_state_round_trip(mongodb: MongoServer, lease_collection: str) -> None:
    with lease(mongodb, lease_collection) as held:
        assert held.load_state() == {}
        held.save_state({"history": {"r1": {"online_at": "2024-05-01T10:00:00Z"}}})
    with lease(mongodb, lease_collection) as again:
        assert again.load_state() == {"history": {"r1": {"online_at": "2024-05-01T10:00:00Z"}}}


@pytest.mark.mongodb
def test_lease_with_a_client_object(mongodb: MongoServer, lease_collection: str) -> None:
    client: pymongo.MongoClient[t.Dict[str, t.Any]] = pymongo.MongoClient(mongodb.uri, serverSelectionTimeoutMS=5000)
    try:
        with MongoLease(client, "ghr_test", lease_collection, "k", wait_timeout=0.1) as held:
            held.ensure_held()
        client.admin.command("ping")  # not closed by the lease: it is the caller's
    finally:
        client.close()


@pytest.mark.mongodb
def test_concurrent_leases_never_overlap(mongodb: MongoServer, lease_collection: str) -> None:
    inside = 0
    overlaps = 0
    acquired = 0
    guard = threading.Lock()

    def work() -> None:
        nonlocal inside, overlaps, acquired
        for _attempt in range(3):
            with lease(mongodb, lease_collection, wait_timeout=30):
                with guard:
                    inside += 1
                    acquired += 1
                    overlaps += inside > 1
                time.sleep(0.01)
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=work) for _attempt in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert acquired == 9
    assert overlaps == 0


def test_unreachable_mongodb_fails_fast_with_lock_error() -> None:
    uri = f"mongodb://user:s3cret-password@127.0.0.1:{free_port()}/?directConnection=true"
    lease_ = MongoLease(uri, "ghr_test", "locks", "k", server_timeout_ms=300, wait_timeout=0.1)
    with pytest.raises(LockError) as info:
        lease_.acquire()
    assert "s3cret-password" not in str(info.value)


class HookedCollection:
    """A real collection whose insert_one first runs `before_insert` (to interleave two holders)."""

    def __init__(self, real: t.Any, before_insert: t.Callable[[], None]) -> None:
        self._real = real
        self._before_insert = before_insert

    def insert_one(self, doc: t.Any) -> t.Any:
        self._before_insert()
        return self._real.insert_one(doc)

    def __getattr__(self, name: str) -> t.Any:
        return getattr(self._real, name)


@pytest.mark.mongodb
def test_an_expired_holder_cannot_renew_while_a_taker_inserts_the_next_generation(
    mongodb: MongoServer, lease_collection: str
) -> None:
    stalled = lease(mongodb, lease_collection, owner="host-a:1", ttl=0.4)
    stalled.acquire()
    time.sleep(0.6)  # the holder stalls past its lease
    taker = lease(mongodb, lease_collection, owner="host-b:2")
    real = taker._collection()
    renewal: list[str] = []

    def stalled_holder_renews() -> None:
        # The taker has read the expired generation and is about to insert the next one.
        try:
            stalled.renew()
            renewal.append("renewed")
        except LockError as exc:
            renewal.append(str(exc))

    taker._collection = lambda: HookedCollection(real, stalled_holder_renews)  # type: ignore[method-assign]
    taker.acquire()
    taker.ensure_held()
    assert len(renewal) == 1 and "lost" in renewal[0]  # else both would hold the lease now
    with pytest.raises(LockError, match="lost"):
        stalled.ensure_held()
    stalled.release()  # does not free the taker's lease
    with pytest.raises(LockError, match="held by host-b:2"):
        lease(mongodb, lease_collection, owner="host-c:3", wait_timeout=0).acquire()
    taker.release()


@pytest.mark.mongodb
def test_ensure_held_fails_from_the_local_deadline_on(mongodb: MongoServer, lease_collection: str) -> None:
    holder = lease(mongodb, lease_collection, ttl=0.4)
    assert holder.margin == pytest.approx(0.1)
    with pytest.raises(LockError, match="not held"):
        holder.ensure_held()
    with holder:
        holder.ensure_held()
        time.sleep(0.35)  # past ttl - margin, before ttl: the server would still count it as ours
        with pytest.raises(LockError, match=r"not renewed within 0\.3 s"):
            holder.ensure_held()
        with pytest.raises(LockError, match="lost"):
            holder.save_state({"history": {}})


def test_lease_ttl_and_margin_are_checked() -> None:
    with pytest.raises(ValueError, match="ttl > 0"):
        MongoLease("mongodb://127.0.0.1:1", "db", "locks", "k", ttl=0)
    with pytest.raises(ValueError, match="margin < ttl"):
        MongoLease("mongodb://127.0.0.1:1", "db", "locks", "k", ttl=10, margin=10)
    lease_ = MongoLease("mongodb://127.0.0.1:1", "db", "locks", "k", ttl=600)
    assert lease_.margin == 30
    assert lease_.renew_interval == pytest.approx(190)


def test_heartbeat_starts_no_thread_for_locks_that_need_no_renewal(tmp_path: pathlib.Path) -> None:
    lock = FileLock(str(tmp_path / "p.lock"))
    with lock, Heartbeat([lock]) as beat:
        assert beat._thread is None


# --- Waiting says who holds the lock ---------------------------------------------------------


def test_a_file_lock_found_held_tells_once_who_holds_it(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "ci-small.lock")
    told: list[str] = []
    waiter = FileLock(path, timeout=0.3, poll_interval=0.05, on_wait=told.append, what="pool small")
    with FileLock(path), pytest.raises(LockError, match=r"held by pid \d+ .*gave up after 0.3 s \(lock_timeout\)"):
        waiter.acquire()
    assert len(told) == 1  # once, not per attempt
    assert told[0].startswith(f"waiting for the lock of pool small held by pid {os.getpid()} on {socket.gethostname()}")
    assert " since 20" in told[0] and "giving up after 0.3 s (lock_timeout)" in told[0]
    with FileLock(path, on_wait=told.append):
        pass  # a free lock: nothing to tell
    assert len(told) == 1


@pytest.mark.mongodb
def test_a_lease_found_held_tells_once_who_holds_it(mongodb: MongoServer, lease_collection: str) -> None:
    told: list[str] = []
    with lease(mongodb, lease_collection, owner="host-a:1"):
        waiter = lease(mongodb, lease_collection, on_wait=told.append, what="pool small")
        with pytest.raises(LockError, match=rf"held by host-a:1 until .*pid {os.getpid()}"):
            waiter.acquire()
    assert len(told) == 1
    assert told[0].startswith(f"waiting for the lock of pool small held by pid {os.getpid()} on {socket.gethostname()}")
    assert " since 20" in told[0]
    with lease(mongodb, lease_collection, on_wait=told.append):
        pass
    assert len(told) == 1


def test_a_stop_request_ends_the_wait_for_a_held_lock(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "ci-small.lock")
    stop = StopRequest()
    told: list[str] = []

    def tell(message: str) -> None:
        told.append(message)
        stop.request("SIGTERM")  # as if the signal came while the run waits

    waiter = FileLock(path, timeout=600, poll_interval=0.05, on_wait=tell, what="pool small", check=stop.check)
    with FileLock(path), pytest.raises(Stopped, match="stopped by SIGTERM while waiting for the lock of pool small"):
        waiter.acquire()
    assert len(told) == 1
    with waiter:  # it closed what it had opened: it can take the lock later
        waiter.ensure_held()
