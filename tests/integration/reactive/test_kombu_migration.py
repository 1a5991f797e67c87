"""Draining the kombu `messages` collection of older webhook routers, written by the real kombu.

The messages are produced as the github-runner-webhook-router produces them: kombu's
MongoDB transport, a SimpleQueue named after the flavor, the job as JSON text.
"""

from __future__ import annotations

import json
import typing as t

import pytest
from kombu import Connection

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import QueueError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive import kombu_messages
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.job import JobStatus
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import JobQueue
from tests.sandbox.mongo import MongoServer

pytestmark = pytest.mark.mongodb
ROUTER_DB = "router"
POOLS = {"small": "small", "large": "large-x64"}


def job_url(job_id: int, host: str = "https://api.github.com") -> str:
    return f"{host}/repos/octo/hello/actions/jobs/{job_id}"


def publish(mongodb: MongoServer, queue_name: str, *bodies: t.Any) -> None:
    """Put messages as the router does: kombu's MongoDB transport, SimpleQueue.put."""
    url = f"{mongodb.uri.rstrip('/')}/{ROUTER_DB}"
    with (
        Connection(url, transport_options={"connect_timeout": 5}) as conn,
        conn.SimpleQueue(queue_name) as simple_queue,
    ):
        for body in bodies:
            simple_queue.put(body, retry=True)


@pytest.fixture
def router_db(raw_db: t.Any, mongodb: MongoServer) -> t.Iterator[t.Any]:
    db = raw_db.client[ROUTER_DB]
    db.drop_collection("messages")
    db.drop_collection("messages.rejected")
    yield db
    raw_db.client.drop_database(ROUTER_DB)


def drain(queue: JobQueue, **kwargs: t.Any) -> kombu_messages.DrainReport:
    return kombu_messages.drain(queue, database=ROUTER_DB, pools_by_queue=POOLS, api_host="api.github.com", **kwargs)


def test_messages_become_jobs_and_bad_ones_are_kept_aside_with_the_reason(
    mongodb: MongoServer, make_queue: t.Callable[..., JobQueue], router_db: t.Any
) -> None:
    router_message = {"labels": ["x64", "large"], "status": "queued", "url": job_url(11)}
    publish(mongodb, "small", json.dumps({"labels": ["small"], "status": "queued", "url": job_url(10)}))
    publish(mongodb, "large", json.dumps(router_message), router_message)  # JSON text, and a dict body
    publish(
        mongodb,
        "small",
        "not json",
        json.dumps({"labels": ["small"], "status": "queued", "url": job_url(12, "https://evil.example.com/api/v3")}),
        json.dumps({"labels": [f"l{i}" for i in range(500)], "status": "queued", "url": job_url(13)}),
    )
    publish(mongodb, "unmapped", json.dumps({"labels": [], "status": "queued", "url": job_url(14)}))
    assert router_db["messages"].count_documents({}) == 7
    tags = [
        json.loads(m["payload"])["properties"]["delivery_tag"] for m in router_db["messages"].find({"queue": "small"})
    ]

    queue = make_queue()
    report = drain(queue)

    assert report.converted == 3
    assert sorted(r.reason for r in report.rejected) == [
        "body.labels: 500 labels, at most 100 are allowed",
        "body.url: names host evil.example.com, not the GitHub at api.github.com",
        "payload.body: is not JSON: Expecting value: line 1 column 1 (char 0)",
    ]
    small = queue.get("api.github.com/octo/hello/10")
    large = queue.get("api.github.com/octo/hello/11")
    assert small is not None and large is not None
    assert (small.pool, small.labels, small.status, small.delivery_ids) == (
        "small",
        ("small",),
        JobStatus.QUEUED,
        (f"kombu:{tags[0]}",),
    )
    assert (large.pool, large.labels, len(large.delivery_ids)) == ("large-x64", ("x64", "large"), 2)
    assert small.received_at <= small.updated_at  # from the message's ObjectId
    # Nothing lost: each message is a job, a rejected message with its reason, or untouched.
    assert [m["queue"] for m in router_db["messages"].find()] == ["unmapped"]
    rejected = list(router_db["messages.rejected"].find())
    assert sorted(m["reason"] for m in rejected) == sorted(r.reason for r in report.rejected)
    assert all(m["payload"] and m["queue"] == "small" for m in rejected)
    assert drain(queue) == kombu_messages.DrainReport()


def test_a_drain_interrupted_before_deleting_repeats_without_a_duplicate(
    mongodb: MongoServer, make_queue: t.Callable[..., JobQueue], router_db: t.Any
) -> None:
    publish(mongodb, "small", json.dumps({"labels": ["small"], "status": "queued", "url": job_url(20)}))
    message = router_db["messages"].find_one()
    queue = make_queue()
    assert drain(queue).converted == 1
    router_db["messages"].insert_one(message)  # as if the drain had stopped between upsert and delete
    before = queue.get("api.github.com/octo/hello/20")
    assert drain(queue).converted == 1
    assert queue.get("api.github.com/octo/hello/20") == before
    assert router_db["messages"].count_documents({}) == 0
    assert [d.count for d in queue.depth()] == [1]


def test_a_failing_upsert_leaves_the_message_in_place(
    mongodb: MongoServer, make_queue: t.Callable[..., JobQueue], router_db: t.Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(mongodb, "small", json.dumps({"labels": ["small"], "status": "queued", "url": job_url(30)}))
    queue = make_queue()

    def unreachable(job: t.Any) -> t.Any:
        raise QueueError("MongoDB upsert: ServerSelectionTimeoutError")

    monkeypatch.setattr(queue, "enqueue", unreachable)
    with pytest.raises(QueueError):
        drain(queue)
    assert router_db["messages"].count_documents({}) == 1
    monkeypatch.undo()
    assert drain(queue).converted == 1
    assert router_db["messages"].count_documents({}) == 0
