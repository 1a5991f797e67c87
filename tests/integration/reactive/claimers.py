"""Claimers that compete for the same jobs, in threads or in processes of their own.

Shared by the exclusivity tests and the claim benchmark (`python -m tests.sandbox.bench_queue`).
"""

from __future__ import annotations

import dataclasses
import datetime
import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.job import JobKey, new_job
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.mongo import MongoAccess
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import JobQueue

UTC = datetime.UTC


@dataclasses.dataclass(frozen=True)
class Win:
    """One successful claim: which claimer won which attempt of which job."""

    owner: str
    job: str
    attempt: int


def open_queue(uri: str, database: str, owner: str, **kwargs: t.Any) -> JobQueue:
    return JobQueue(MongoAccess(uri, server_timeout=30.0), database=database, owner=owner, **kwargs)


def fill(queue: JobQueue, pool: str, count: int, *, repository: str | None = None, first_id: int = 1) -> list[str]:
    """Enqueue `count` queued jobs for `pool` (of a repository named after it); their ids."""
    repository = repository or f"octo/{pool}"
    now = datetime.datetime.now(UTC)
    ids = []
    for number in range(first_id, first_id + count):
        job = new_job(JobKey("api.github.com", repository, number), pool=pool, labels=["x64"], status="queued", now=now)
        queue.enqueue(job)
        ids.append(job.id)
    return ids


def claim_until_empty(queue: JobQueue, pool: str, limit: int = 2) -> list[Win]:
    """Claim from `pool` until a claim returns nothing; never releases."""
    wins: list[Win] = []
    while True:
        result = queue.claim([pool], limit=limit)
        if not result.leases:
            return wins
        wins.extend(Win(lease.owner, lease.job.id, lease.attempt) for lease in result.leases)


def process_claimer(uri: str, database: str, owner: str, pools: list[str], barrier: t.Any, results: t.Any) -> None:
    """A claimer in a process of its own: per pool (one per round), start with the others, claim all it can."""
    queue = open_queue(uri, database, owner)
    try:
        for pool in pools:
            barrier.wait(timeout=120)
            wins = claim_until_empty(queue, pool)
            results.put((pool, [dataclasses.astuple(win) for win in wins]))
    finally:
        queue.mongo.close()


class FakeClock:
    """A clock the test moves; the queue only ever compares times it took from its own clock."""

    def __init__(self, start: datetime.datetime | None = None) -> None:
        self.now = start or datetime.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += datetime.timedelta(seconds=seconds)
