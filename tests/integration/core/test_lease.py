"""MongoLease exclusivity under contention, against the real MongoDB-compatible server.

Holders believe their lease valid until `ttl - margin` after the start of their last
successful write (that is the lease's contract); no other holder may acquire before then.
Holders stall now and then for longer than the ttl, as one blocked on a slow call does,
while contenders poll every few milliseconds.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
import typing as t
import uuid

import pymongo
import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import LockError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._lock import Heartbeat, MongoLease
from tests.sandbox.mongo import MongoServer

pytestmark = pytest.mark.mongodb

DB = "ghr_test"
TTL = 0.5


@dataclasses.dataclass
class Holding:
    owner: str
    acquired: float  # monotonic, when acquire() returned
    believed_until: float  # monotonic, end of what the holder was entitled to believe


@pytest.fixture
def collection(mongodb: MongoServer) -> t.Iterator[str]:
    name = f"leases_{uuid.uuid4().hex[:8]}"
    yield name
    client: pymongo.MongoClient[dict[str, t.Any]] = pymongo.MongoClient(mongodb.uri, serverSelectionTimeoutMS=5000)
    client[DB][name].drop()
    client.close()


def overlaps(holdings: t.Sequence[Holding]) -> list[tuple[Holding, Holding]]:
    """Pairs where the later holder acquired while the earlier one could still believe it held."""
    ordered = sorted(holdings, key=lambda h: h.acquired)
    return [
        (earlier, later)
        for i, earlier in enumerate(ordered)
        for later in ordered[i + 1 :]
        if later.acquired < earlier.believed_until
    ]


def test_contenders_never_hold_the_lease_together_even_when_holders_stall(
    mongodb: MongoServer, collection: str
) -> None:
    holdings: list[Holding] = []
    failures: list[BaseException] = []
    guard = threading.Lock()

    def contend(worker: int) -> None:
        rng = random.Random(worker)
        try:
            for _round in range(4):
                lease = MongoLease(
                    mongodb.uri,
                    DB,
                    collection,
                    "ci-pool",
                    owner=f"w{worker}",
                    ttl=TTL,
                    wait_timeout=60,
                    poll_interval=0.005,
                )
                lease.acquire()
                holding = Holding(lease.owner, time.monotonic(), 0.0)
                holding.believed_until = holding.acquired
                for _step in range(3):
                    time.sleep(rng.choice([0.02, 0.05, 0.1, TTL * 1.3]))  # sometimes a stall past the ttl
                    started = time.monotonic()
                    try:
                        lease.renew()
                    except LockError:
                        break  # lost: the holder stops here
                    holding.believed_until = started + TTL - lease.margin
                holding.believed_until = min(holding.believed_until, time.monotonic())
                lease.release()
                with guard:
                    holdings.append(holding)
        except BaseException as exc:  # reported by the test, not lost in the thread
            failures.append(exc)

    threads = [threading.Thread(target=contend, args=(worker,)) for worker in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    assert len(holdings) == 12
    assert overlaps(holdings) == []


def test_a_heartbeat_keeps_the_lease_through_long_work_and_contenders_wait(
    mongodb: MongoServer, collection: str
) -> None:
    holder = MongoLease(mongodb.uri, DB, collection, "ci-pool", owner="long-work", ttl=1.0)
    contender_results: list[str] = []

    def contend() -> None:
        lease = MongoLease(mongodb.uri, DB, collection, "ci-pool", owner="contender", ttl=1.0, poll_interval=0.01)
        lease.wait_timeout = 2.5  # more than twice the holder's ttl
        try:
            lease.acquire()
        except LockError as exc:
            contender_results.append(str(exc))
        else:
            contender_results.append("acquired")
            lease.release()

    with holder, Heartbeat([holder]):
        thread = threading.Thread(target=contend)
        thread.start()
        thread.join(30)
        holder.ensure_held()  # still ours after the contender gave up
    assert len(contender_results) == 1
    assert "held by long-work" in contender_results[0]
    assert not [th for th in threading.enumerate() if th.name == "ghr-lease-heartbeat"]
