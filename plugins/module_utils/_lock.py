# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pool locks: one reconcile per pool at a time, with a small persistent state beside the lock.

`FileLock` (flock on a local file) serves one host; `MongoLease` (a lease document
in MongoDB that expires unless renewed) serves several hosts or AWX nodes. Both
wait a bounded time and then raise `LockError` naming the holder (`on_wait` is told
who holds it as soon as the first attempt finds it held), and both keep a JSON-able
dict (the pool's reconcile history) next to the lock. `Heartbeat`
renews leases from a daemon thread while the work they protect goes on.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
import tempfile
import threading
import time
import traceback
import typing as t
import uuid

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import LockError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._interrupt import Stopped

PYMONGO_IMPORT_ERROR: t.Optional[str]
try:
    import pymongo
    import pymongo.errors

    HAS_PYMONGO = True
    PYMONGO_IMPORT_ERROR = None
except ImportError:
    HAS_PYMONGO = False
    PYMONGO_IMPORT_ERROR = traceback.format_exc()

_UTC = datetime.timezone.utc

#: Told once, when a lock's first attempt finds it held, who holds it (a run should not wait silently).
OnWait = t.Callable[[str], None]
#: Called between attempts; raises Stopped to end the wait (a stop request).
Check = t.Callable[[], None]


def _check_between_attempts(check: t.Optional[Check], what: str) -> None:
    if check is None:
        return
    try:
        check()
    except Stopped as exc:
        raise Stopped(f"{exc} while waiting for the lock of {what}: nothing was changed") from None


class PoolLock(t.Protocol):
    """A pool lock as a context manager, with the pool's small persistent state."""

    def __enter__(self) -> PoolLock: ...

    def __exit__(self, *exc: object) -> t.Optional[bool]: ...

    def load_state(self) -> t.Dict[str, t.Any]: ...

    def save_state(self, state: t.Mapping[str, t.Any]) -> None: ...

    def renew(self) -> None:
        """Keep holding the lock (a lease expires unless renewed); LockError if it was lost."""

    def ensure_held(self) -> None:
        """LockError unless the lock is still ours: call it before each change the lock protects."""

    @property
    def renew_interval(self) -> t.Optional[float]:
        """Seconds between renewals that keep the lock; None when it needs none."""


def default_owner() -> str:
    """A holder name unique to this lock object: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _holder_text(holder: t.Mapping[str, t.Any]) -> str:
    parts = []
    if holder.get("pid"):
        parts.append(f"pid {holder['pid']}")
    if holder.get("host"):
        parts.append(f"on {holder['host']}")
    since = holder.get("since")
    if isinstance(since, datetime.datetime):
        since = (since if since.tzinfo else since.replace(tzinfo=_UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    if since:
        parts.append(f"since {since}")
    return " ".join(parts) or "an unknown holder"


def waiting_text(what: str, holder: t.Mapping[str, t.Any], timeout: float) -> str:
    """E.g. ``waiting for the lock of pool small held by pid 8682 on host-a since …; giving up after 300 s``."""
    return (
        f"waiting for the lock of {what} held by {_holder_text(holder)}; giving up after {timeout:g} s (lock_timeout)"
    )


def _now_text() -> str:
    return datetime.datetime.now(_UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FileLock:
    """An exclusive `flock` on `path`, waiting at most `timeout` seconds.

    The lock file records the holder (pid, host, since) for the error a waiter gets.
    The state lives in a sibling ``<name>.state.json`` (0600, replaced atomically).
    flock is released by the kernel when the holder dies, so a crash leaves no stale lock.
    """

    def __init__(
        self,
        path: str,
        timeout: float = 60.0,
        poll_interval: float = 0.1,
        on_wait: t.Optional[OnWait] = None,
        what: t.Optional[str] = None,
        check: t.Optional[Check] = None,
    ) -> None:
        self.path = path
        self.check = check
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.on_wait = on_wait
        self.what = what or self.path  # the lock in messages, e.g. "pool small"
        base = path[: -len(".lock")] if path.endswith(".lock") else path
        self.state_path = base + ".state.json"
        self._fd: t.Optional[int] = None

    def acquire(self) -> None:
        if self._fd is not None:
            raise LockError(f"pool lock {self.path} is already held by this process")
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.timeout
        told = self.on_wait is None
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise LockError(f"cannot lock {self.path}: {exc.strerror}") from None
            if not told:
                told = True
                t.cast(OnWait, self.on_wait)(waiting_text(self.what, self._read_holder(fd), self.timeout))
            if time.monotonic() >= deadline:
                holder = self._read_holder(fd)
                os.close(fd)
                raise LockError(
                    f"pool lock {self.path} is held by {_holder_text(holder)}; gave up after {self.timeout:g} s"
                    " (lock_timeout)"
                )
            try:
                _check_between_attempts(self.check, self.what)
            except Stopped:
                os.close(fd)
                raise
            time.sleep(self.poll_interval)
        self._fd = fd
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": _now_text()})
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode(), 0)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @staticmethod
    def _read_holder(fd: int) -> t.Dict[str, t.Any]:
        try:
            data = json.loads(os.pread(fd, 4096, 0) or b"{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def renew(self) -> None:
        """Nothing to do: an flock lasts until it is released or the process ends."""

    def ensure_held(self) -> None:
        if self._fd is None:
            raise LockError(f"pool lock {self.path} is not held")

    @property
    def renew_interval(self) -> t.Optional[float]:
        return None

    def load_state(self) -> t.Dict[str, t.Any]:
        """The saved state, {} when there is none (or it is unreadable: it is only history)."""
        try:
            with open(self.state_path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def save_state(self, state: t.Mapping[str, t.Any]) -> None:
        """Replace the state atomically (write a 0600 temporary file, then rename)."""
        if self._fd is None:
            raise LockError(f"pool lock {self.path} is not held: refusing to save its state")
        directory = os.path.dirname(os.path.abspath(self.state_path))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".state-", suffix=".tmp")  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(state, fh, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.state_path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


class MongoLease:
    """A lease on `key` in `db.collection`, lasting `ttl` seconds unless renewed.

    Each holding is one document ``{_id: "<key>/<gen>", key, gen, owner, lease_until,
    released, state}``. To acquire, read the latest generation; when it is released or
    expired, insert generation + 1. The unique `_id` makes the insert the only atomic
    step needed: of several contenders exactly one inserts a generation. (A conditional
    `find_one_and_update` would be one step on MongoDB, but MongoDB-compatible servers
    such as FerretDB 1.x do not apply it atomically under concurrency.) The holder is
    the newest generation; a holder that finds a newer one has lost the lease.

    A holder never trusts a lease the server may already count as expired: it keeps a
    local monotonic deadline, `ttl - margin` after the start of its last successful
    write, and from that moment on the lease is lost for good. It is neither renewed
    nor does `ensure_held` pass, so a stalled holder cannot renew its way back in while
    a taker inserts the next generation. `margin` covers the clock skew between hosts
    and the time a call already under way may still take.

    A crashed holder blocks others for at most `ttl`. The state (the pool's history)
    travels from generation to generation.
    """

    def __init__(
        self,
        client_or_uri: t.Any,
        db: str,
        collection: str,
        key: str,
        owner: t.Optional[str] = None,
        ttl: float = 120.0,
        wait_timeout: float = 60.0,
        poll_interval: float = 0.5,
        server_timeout_ms: int = 5000,
        margin: t.Optional[float] = None,
        on_wait: t.Optional[OnWait] = None,
        what: t.Optional[str] = None,
        check: t.Optional[Check] = None,
    ) -> None:
        if not HAS_PYMONGO:
            raise ImportError(f"pymongo is required: {PYMONGO_IMPORT_ERROR}")
        margin = min(ttl / 4, 30.0) if margin is None else margin
        if ttl <= 0 or not 0 <= margin < ttl:
            raise ValueError(f"a lease needs ttl > 0 and 0 <= margin < ttl, got ttl {ttl} and margin {margin}")
        self._uri = client_or_uri if isinstance(client_or_uri, str) else None
        self._client: t.Any = None if self._uri is not None else client_or_uri
        self.db = db
        self.collection_name = collection
        self.key = key
        self.owner = owner or default_owner()
        self.ttl = ttl
        self.margin = margin
        self.wait_timeout = wait_timeout
        self.poll_interval = poll_interval
        self.server_timeout_ms = server_timeout_ms
        self.on_wait = on_wait
        self.check = check
        self.what = what  # the lock in messages, e.g. "pool small"; else the lease's key and collection
        self._gen: t.Optional[int] = None
        self._deadline = 0.0  # time.monotonic() from which the lease counts as lost
        self._lost: t.Optional[str] = None  # why the lease was lost
        self._writing = threading.Lock()  # a heartbeat thread renews while the holder saves its state

    @property
    def renew_interval(self) -> float:
        """Three renewals fit before the deadline: one slow or failed renewal does not lose the lease."""
        return (self.ttl - self.margin) / 3

    @property
    def _where(self) -> str:
        return f"lease {self.key!r} in {self.db}.{self.collection_name}"

    def _collection(self) -> t.Any:
        if self._client is None:
            # Bounded waits everywhere: an unreachable server must fail the run, not hang it.
            self._client = pymongo.MongoClient(
                self._uri,
                serverSelectionTimeoutMS=self.server_timeout_ms,
                connectTimeoutMS=self.server_timeout_ms,
                socketTimeoutMS=self.server_timeout_ms * 2,
                appname="selfhosted.github_runners",
            )
        return self._client[self.db][self.collection_name]

    def _fail(self, exc: Exception) -> LockError:
        # pymongo's messages name hosts, never the URI's credentials.
        return LockError(f"MongoDB {self._where}: {type(exc).__name__}: {str(exc)[:300]}")

    def _latest(self) -> t.Optional[t.Dict[str, t.Any]]:
        doc: t.Optional[t.Dict[str, t.Any]] = self._collection().find_one({"key": self.key}, sort=[("gen", -1)])
        return doc

    @staticmethod
    def _until(doc: t.Mapping[str, t.Any]) -> datetime.datetime:
        until = doc.get("lease_until")
        if not isinstance(until, datetime.datetime):
            return datetime.datetime.min.replace(tzinfo=_UTC)
        return until if until.tzinfo else until.replace(tzinfo=_UTC)

    def _is_free(self, doc: t.Mapping[str, t.Any], now: datetime.datetime) -> bool:
        return bool(doc.get("released")) or self._until(doc) < now

    def _try_acquire(self) -> t.Optional[t.Dict[str, t.Any]]:
        """None when acquired, else the holder's document."""
        coll = self._collection()
        latest = self._latest()
        started = time.monotonic()  # before lease_until is computed: the local deadline is never later
        now = datetime.datetime.now(_UTC)
        if latest is not None and not self._is_free(latest, now):
            return latest
        gen = int(latest["gen"]) + 1 if latest is not None else 1
        state = latest.get("state") if latest is not None else None
        doc = {
            "_id": f"{self.key}/{gen}",
            "key": self.key,
            "gen": gen,
            "owner": self.owner,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": now,
            "lease_until": now + datetime.timedelta(seconds=self.ttl),
            "released": False,
            "state": state if isinstance(state, dict) else {},
        }
        try:
            coll.insert_one(doc)
        except pymongo.errors.DuplicateKeyError:
            return self._latest() or {}  # another contender inserted this generation first
        newer = coll.find_one({"key": self.key, "gen": {"$gt": gen}})
        if newer is not None:  # we read a stale latest; the newer generation holds
            coll.update_one({"_id": doc["_id"]}, {"$set": {"released": True}})
            return dict(newer)
        self._gen, self._lost, self._deadline = gen, None, started + self.ttl - self.margin
        coll.delete_many({"key": self.key, "gen": {"$lt": gen}})  # older generations are history
        return None

    def acquire(self) -> None:
        if self._gen is not None:
            raise LockError(f"{self._where} is already held by this process")
        deadline = time.monotonic() + self.wait_timeout
        told = self.on_wait is None
        try:
            while True:
                holder = self._try_acquire()
                if holder is None:
                    return
                if not told:
                    told = True
                    what = self.what or self._where
                    t.cast(OnWait, self.on_wait)(waiting_text(what, holder, self.wait_timeout))
                if time.monotonic() >= deadline:
                    until = self._until(holder).strftime("%Y-%m-%dT%H:%M:%SZ")
                    raise LockError(
                        f"{self._where} is held by {holder.get('owner') or 'an unknown holder'} until {until}"
                        f" unless released ({_holder_text(holder)}); gave up after {self.wait_timeout:g} s"
                        " (lock_timeout)"
                    )
                _check_between_attempts(self.check, self.what or self._where)
                time.sleep(self.poll_interval)
        except Stopped:
            self._close_owned()
            raise
        except pymongo.errors.PyMongoError as exc:
            self._close_owned()
            raise self._fail(exc) from None

    def ensure_held(self) -> None:
        """LockError once the lease is lost: taken over, or its local deadline passed."""
        if self._gen is None:
            raise LockError(f"{self._where} is not held")
        if self._lost is None and time.monotonic() >= self._deadline:
            self._lost = f"not renewed within {self.ttl - self.margin:g} s (lock_ttl {self.ttl:g} s)"
        if self._lost is not None:
            raise LockError(f"{self._where} was lost: {self._lost}; its pool's changes stop here")

    def _update_held(self, fields: t.Mapping[str, t.Any]) -> None:
        """Extend the lease (and set `fields`) if we still hold it; LockError when it was lost."""
        with self._writing:
            self.ensure_held()
            started = time.monotonic()
            deadline = self._deadline
            now = datetime.datetime.now(_UTC)
            update = {"lease_until": now + datetime.timedelta(seconds=self.ttl), **fields}
            try:
                coll = self._collection()
                newer = coll.find_one({"key": self.key, "gen": {"$gt": self._gen}})
                result = None if newer else coll.update_one({"_id": f"{self.key}/{self._gen}"}, {"$set": update})
            except pymongo.errors.PyMongoError as exc:
                raise self._fail(exc) from None  # not lost yet: the deadline decides
            if result is None or result.matched_count != 1:
                self._lost = "it expired and another reconcile took it over"
            elif time.monotonic() >= deadline:
                # The write may have landed after others saw the lease expire: it proves nothing.
                self._lost = f"the renewal ended after the lease's deadline (lock_ttl {self.ttl:g} s)"
            else:
                self._deadline = started + self.ttl - self.margin
            self.ensure_held()

    def renew(self) -> None:
        """Extend the lease by `ttl`; LockError, and never again a renewal, once it is lost."""
        self._update_held({})

    def release(self) -> None:
        if self._gen is None:
            return
        gen, self._gen = self._gen, None
        try:
            # Also when lost: a newer generation does not look at ours, and a lease that merely
            # ran out is freed for the next holder now rather than at its lease_until.
            self._collection().update_one(
                {"_id": f"{self.key}/{gen}", "owner": self.owner},
                {"$set": {"released": True, "lease_until": datetime.datetime.now(_UTC)}},
            )
        except pymongo.errors.PyMongoError as exc:
            raise self._fail(exc) from None
        finally:
            self._close_owned()

    def _close_owned(self) -> None:
        if self._uri is not None and self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> MongoLease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def load_state(self) -> t.Dict[str, t.Any]:
        """The state of the newest generation (ours while held)."""
        try:
            latest = self._latest()
        except pymongo.errors.PyMongoError as exc:
            raise self._fail(exc) from None
        state = (latest or {}).get("state")
        return dict(state) if isinstance(state, dict) else {}

    def save_state(self, state: t.Mapping[str, t.Any]) -> None:
        """Store the state in our lease document; renews the lease in the same update."""
        self._update_held({"state": dict(state)})


class Heartbeat:
    """Renews `locks` from a daemon thread while the work they protect goes on.

    A renewal that fails is retried at the next beat; a lease lost for good makes its
    `ensure_held` raise, which stops its pool's changes. Locks that need no renewal
    (flock) start no thread.
    """

    def __init__(self, locks: t.Iterable[PoolLock]) -> None:
        self._locks = [lock for lock in locks if lock.renew_interval is not None]
        self._interval = min((t.cast(float, lock.renew_interval) for lock in self._locks), default=None)
        self._stop = threading.Event()
        self._thread: t.Optional[threading.Thread] = None

    def _beat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            for lock in self._locks:
                # A failure is retried at the next beat; ensure_held tells the pool once it is lost.
                with contextlib.suppress(LockError):
                    lock.renew()

    def __enter__(self) -> Heartbeat:
        if self._interval is not None:
            self._thread = threading.Thread(
                target=self._beat, args=(self._interval,), name="ghr-lease-heartbeat", daemon=True
            )
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
