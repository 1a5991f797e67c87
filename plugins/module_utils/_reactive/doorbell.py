# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The doorbell: wake-ups that tell idle consumers a job was queued, so they claim at once.

A capped collection, `wakeups`, holds small documents ``{pool, at}``. Whoever queues a job
(the router, the kombu drain, the reconcile's backfill: everything that calls
`JobQueue.enqueue`) rings it; each consumer tails it with a tailable, awaiting cursor
and claims when a document for one of its pools arrives. Both MongoDB and FerretDB
(1.18 and later) have capped collections and tailable cursors, unlike change streams,
which FerretDB lacks and MongoDB has only on replica sets.

The doorbell is a hint and never decides anything: a ring lost, a listener that cannot
tail (an older server, a `wakeups` collection that is not capped) or a cursor that dies
leaves the consumer's poll to find the job, only later. So every failure here is logged
and swallowed, and the listener reopens its cursor after a pause.

Two quirks shape `listen`. A tailable cursor whose first query returns nothing is dead
at once, on MongoDB and FerretDB alike; and FerretDB also closes it when the first
batch returns everything there was. So a listener first rings twice itself and asks
for a first batch of one document: its cursor always starts with more to read.

A listener hears some rings twice: FerretDB's tailable cursors return a ring again now and
then (a few, or a whole stretch at once), and a reopened cursor starts at the oldest ring kept.
So a listener remembers the ids of the rings it read, more of them than the collection keeps,
and wakes only for rings it has not heard.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import threading
import time
import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import QueueError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.mongo import (
    HAS_PYMONGO,
    MongoAccess,
    utc_now,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._retry import backoff

if HAS_PYMONGO:
    import pymongo
    import pymongo.errors

log = logging.getLogger("selfhosted.github_runners.doorbell")

DEFAULT_COLLECTION = "wakeups"
#: Rings kept: a listener that falls further behind loses its place and reopens (a few spurious claims).
MAX_RINGS = 1000
_SIZE_BYTES = 1 << 20
#: How long one read waits for a ring: a listener notices `stop` within about this time.
AWAIT_SECONDS = 1.0
#: The pause before a failed listener opens its cursor again (the poll serves jobs meanwhile).
RETRY_SECONDS = 5.0
#: Seconds the ringer thread waits for a ring before it ends.
RINGER_IDLE = 30.0
#: Writes of a ring that failed tried again (a busy server), after a backoff from this many seconds.
RING_RETRIES = 3
RING_RETRY_BASE = 0.05
_NAMESPACE_EXISTS = 48


class Doorbell:
    """Ring and listen on `database.collection`; thread-safe."""

    def __init__(self, mongo: MongoAccess, database: str, collection: str = DEFAULT_COLLECTION) -> None:
        self.mongo = mongo
        self.database = database
        self.collection = collection
        self._where = f"{database}.{collection}"
        self._pending: t.Set[t.Optional[str]] = set()  # pools to ring for
        self._ringing = threading.Condition()
        self._ringer: t.Optional[threading.Thread] = None
        self.retry_seconds = RETRY_SECONDS

    def ensure(self) -> None:
        """Create the capped collection when it is missing; QueueError when that fails or it is not capped."""

        def create() -> bool:
            try:
                self.mongo.client[self.database].create_collection(
                    self.collection, capped=True, size=_SIZE_BYTES, max=MAX_RINGS
                )
            except pymongo.errors.CollectionInvalid:
                pass  # it exists (made by another process)
            except pymongo.errors.OperationFailure as exc:
                if exc.code != _NAMESPACE_EXISTS:
                    raise
            return bool(self.mongo.client[self.database][self.collection].options().get("capped"))

        if not self.mongo.call(f"creating the capped collection {self._where}", create):
            raise QueueError(
                f"MongoDB {self._where} exists and is not a capped collection: drop it to use the doorbell"
            )

    def ring(self, pool: t.Optional[str]) -> None:
        """Tell the listeners that `pool` has a job to claim, soon after and without waiting for it.

        A thread of the doorbell writes the rings, one insert for all the pools rung while the
        previous one was written: a router under load pays no round trip per delivery for them.
        Every ring is written after the call that asked for it.
        """
        with self._ringing:
            self._pending.add(pool)
            if self._ringer is None:
                self._ringer = threading.Thread(target=self._write_rings, name="ghr-doorbell-ringer", daemon=True)
                self._ringer.start()
            self._ringing.notify()

    def _write_rings(self) -> None:
        failures = 0
        while True:
            with self._ringing:
                if not self._pending and not self._ringing.wait_for(lambda: bool(self._pending), timeout=RINGER_IDLE):
                    self._ringer = None  # idle: the next ring starts another
                    return
                pools, self._pending = self._pending, set()
            now = utc_now()
            docs = [{"pool": pool, "at": now} for pool in sorted(pools, key=str)]
            try:
                self.mongo.call(
                    f"ringing {self._where}",
                    functools.partial(
                        self.mongo.collection(self.database, self.collection).insert_many, docs, ordered=False
                    ),
                )
                failures = 0
            except Exception as exc:  # a hint only: the consumers' poll finds the jobs
                failures += 1
                if failures > RING_RETRIES:
                    log.debug("the doorbell did not ring for %s: %s", sorted(pools, key=str), exc)
                    failures = 0
                    continue
                with self._ringing:  # a busy server: once more soon, with the rings asked for meanwhile
                    self._pending |= pools
                time.sleep(backoff(failures, RING_RETRY_BASE, 1.0))

    def listen(self, pools: t.Collection[str], wake: t.Callable[[], None], stop: threading.Event) -> None:
        """Call `wake` for every ring of one of `pools` until `stop` is set; never raises.

        The listener opens a client of its own to the queue's URI: one connection, since FerretDB ties a
        cursor to the connection that opened it; and socket timeouts rather than pymongo's
        per-operation ones, which end FerretDB's tailable cursors after their first read.
        """
        uri = self.mongo.uri
        if uri is None:
            log.warning("the doorbell %s needs the queue's URI to listen; jobs are found by polling", self._where)
            return
        warned = False
        heard = _Heard()
        while not stop.is_set():
            try:
                self._tail(uri, pools, wake, stop, heard)
            except Exception as exc:  # the poll goes on serving the pools
                if not warned:
                    log.warning(
                        "the doorbell %s cannot be read (%s); jobs are found by polling until it can",
                        self._where,
                        str(exc)[:300],
                    )
                    warned = True
                else:
                    log.debug("the doorbell %s cursor ended (%s); reopening it", self._where, str(exc)[:300])
                stop.wait(self.retry_seconds)

    def _client(self, uri: str) -> t.Any:
        ms = int(self.mongo.server_timeout * 1000)
        return pymongo.MongoClient(
            uri,
            maxPoolSize=1,
            serverSelectionTimeoutMS=ms,
            connectTimeoutMS=ms,
            socketTimeoutMS=ms + int(AWAIT_SECONDS * 1000),  # a read waits up to AWAIT_SECONDS for a ring
            appname="selfhosted.github_runners doorbell",
        )

    def _tail(
        self,
        uri: str,
        pools: t.Collection[str],
        wake: t.Callable[[], None],
        stop: threading.Event,
        heard: _Heard,
    ) -> None:
        client = self._client(uri)
        db = client[self.database]
        cursor_id = 0
        try:
            # Our own two rings: the cursor's first query finds documents and its first batch leaves one.
            now = utc_now()
            db[self.collection].insert_many([{"pool": None, "at": now}, {"pool": None, "at": now}])
            reply = db.command(
                {"find": self.collection, "filter": {}, "tailable": True, "awaitData": True, "batchSize": 1}
            )
            log.debug("listening on the doorbell %s", self._where)
            wait_ms = int(AWAIT_SECONDS * 1000)
            while True:
                cursor = reply["cursor"]
                cursor_id = cursor["id"]
                batch = cursor.get("firstBatch", cursor.get("nextBatch", []))
                if any(doc.get("pool") in pools for doc in heard.new(batch)):
                    wake()
                if not cursor_id:
                    raise RuntimeError("the server closed the tailable cursor")
                if stop.is_set():
                    return
                reply = db.command(
                    {"getMore": cursor_id, "collection": self.collection, "batchSize": MAX_RINGS, "maxTimeMS": wait_ms}
                )
        finally:
            if cursor_id:
                with contextlib.suppress(Exception):  # the server drops idle cursors on its own
                    db.command({"killCursors": self.collection, "cursors": [cursor_id]})
            client.close()


class _Heard:
    """The ids of the rings a listener read last, kept across the cursors it opens."""

    def __init__(self, keep: int = 2 * MAX_RINGS) -> None:
        self._ids: t.OrderedDict[object, None] = collections.OrderedDict()
        self._keep = keep

    def new(self, batch: t.Iterable[t.Mapping[str, t.Any]]) -> t.List[t.Mapping[str, t.Any]]:
        """The rings of `batch` not read before; from now on they are."""
        fresh = []
        for doc in batch:
            ring_id = doc.get("_id")
            if ring_id in self._ids:
                continue
            self._ids[ring_id] = None
            fresh.append(doc)
        while len(self._ids) > self._keep:
            self._ids.popitem(last=False)
        return fresh
