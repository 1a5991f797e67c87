"""Fixtures for the reactive queue: a fresh database on the test MongoDB server per test."""

from __future__ import annotations

import typing as t

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import JobQueue
from tests.integration.reactive.claimers import open_queue
from tests.sandbox.mongo import MongoServer


@pytest.fixture
def make_queue(mongodb: MongoServer, database: str) -> t.Iterator[t.Callable[..., JobQueue]]:
    """Queues on the test database (one per claimer), closed after the test; indexes created once."""
    queues: list[JobQueue] = []

    def make(owner: str = "consumer-a", **kwargs: t.Any) -> JobQueue:
        queue = open_queue(mongodb.uri, database, owner, **kwargs)
        if not queues:
            queue.ensure_indexes()
        queues.append(queue)
        return queue

    yield make
    for queue in queues:
        queue.mongo.close()
