"""The test MongoDB server behaves as MongoDB does for the operations the collection uses."""

from __future__ import annotations

import uuid

import pymongo
import pytest
from pymongo.errors import DuplicateKeyError

from tests.sandbox.mongo import MongoServer


@pytest.fixture
def collection(mongodb: MongoServer) -> pymongo.collection.Collection[dict[str, object]]:
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(mongodb.uri, serverSelectionTimeoutMS=5000)
    coll = client["ghr_test"][f"jobs_{uuid.uuid4().hex[:8]}"]
    yield coll
    coll.drop()
    client.close()


def test_ping(mongodb: MongoServer) -> None:
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(mongodb.uri, serverSelectionTimeoutMS=5000)
    assert client.admin.command("ping")["ok"] == 1.0
    client.close()


def test_insert_and_find(collection: pymongo.collection.Collection[dict[str, object]]) -> None:
    collection.insert_one({"_id": "a", "status": "queued"})
    assert collection.find_one({"_id": "a"}) == {"_id": "a", "status": "queued"}


def test_unique_index_rejects_duplicate(collection: pymongo.collection.Collection[dict[str, object]]) -> None:
    collection.create_index("job_key", unique=True)
    collection.insert_one({"job_key": "github.com/o/r/1"})
    with pytest.raises(DuplicateKeyError):
        collection.insert_one({"job_key": "github.com/o/r/1"})
    assert collection.count_documents({}) == 1


def test_find_one_and_update_with_sort_returns_after(
    collection: pymongo.collection.Collection[dict[str, object]],
) -> None:
    collection.insert_many(
        [
            {"_id": "j2", "status": "queued", "received_at": 2},
            {"_id": "j1", "status": "queued", "received_at": 1},
            {"_id": "j3", "status": "claimed", "received_at": 0},
        ]
    )
    claimed = collection.find_one_and_update(
        {"status": "queued"},
        {"$set": {"status": "claimed", "lease_owner": "c1"}, "$inc": {"attempts": 1}},
        sort=[("received_at", pymongo.ASCENDING)],
        return_document=pymongo.ReturnDocument.AFTER,
    )
    assert claimed is not None
    assert claimed["_id"] == "j1"
    assert claimed["status"] == "claimed"
    assert claimed["attempts"] == 1
    # The next claim takes the next oldest; none is left after that.
    second = collection.find_one_and_update(
        {"status": "queued"},
        {"$set": {"status": "claimed"}},
        sort=[("received_at", pymongo.ASCENDING)],
        return_document=pymongo.ReturnDocument.AFTER,
    )
    assert second is not None and second["_id"] == "j2"
    assert collection.find_one_and_update({"status": "queued"}, {"$set": {"status": "claimed"}}) is None
