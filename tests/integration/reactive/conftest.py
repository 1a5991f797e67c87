"""Fixtures for the reactive queue: a fresh database on the test MongoDB server per test."""

from __future__ import annotations

import typing as t
import uuid

import pymongo
import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import JobQueue
from tests.integration.reactive.claimers import open_queue
from tests.sandbox.mongo import MongoServer


@pytest.fixture
def database(mongodb: MongoServer) -> t.Iterator[str]:
    name = f"ghr_test_{uuid.uuid4().hex[:10]}"
    yield name
    client: pymongo.MongoClient[dict[str, t.Any]] = pymongo.MongoClient(mongodb.uri, serverSelectionTimeoutMS=5000)
    client.drop_database(name)
    client.close()


@pytest.fixture
def raw_db(mongodb: MongoServer, database: str) -> t.Iterator[t.Any]:
    """The test database through a plain pymongo client, for writing what the queue would refuse to."""
    client: pymongo.MongoClient[dict[str, t.Any]] = pymongo.MongoClient(
        mongodb.uri, serverSelectionTimeoutMS=5000, tz_aware=True
    )
    yield client[database]
    client.close()


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
