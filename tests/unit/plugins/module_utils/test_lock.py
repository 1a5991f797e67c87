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
from ansible_collections.selfhosted.github_runners.plugins.module_utils._lock import FileLock, MongoLease, PoolLock
from tests.sandbox.mongo import MongoServer, free_port

# --- FileLock -----------------------------------------------------------------------------


def test_file_lock_is_a_pool_lock(tmp_path: pathlib.Path) -> None:
    lock: PoolLock = FileLock(str(tmp_path / "p.lock"))
    with lock as held:
        assert held is lock


def test_file_lock_creates_its_directory_and_records_the_holder(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "locks" / "ci-small.lock"
    with FileLock(str(path)) as lock:
        assert lock.held
        assert f'"pid": {os.getpid()}' in path.read_text()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not lock.held
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
        assert waiter.held
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
            assert lock.held
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
        assert second.held


@pytest.mark.mongodb
def test_expired_lease_is_taken_over_and_the_old_holder_learns_it(mongodb: MongoServer, lease_collection: str) -> None:
    first = lease(mongodb, lease_collection, owner="host-a:1", ttl=0.2)
    first.acquire()
    time.sleep(0.4)
    second = lease(mongodb, lease_collection, owner="host-b:2")
    second.acquire()
    with pytest.raises(LockError, match="lost"):
        first.save_state({"history": "stale"})
    with pytest.raises(LockError, match="not held"):
        first.renew()
    second.save_state({"history": "fresh"})
    second.release()
    assert lease(mongodb, lease_collection).load_state() == {"history": "fresh"}


@pytest.mark.mongodb
def test_lease_renewal_keeps_it(mongodb: MongoServer, lease_collection: str) -> None:
    first = lease(mongodb, lease_collection, owner="host-a:1", ttl=0.5)
    with first:
        for _attempt in range(3):
            time.sleep(0.2)
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
            assert held.held
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
