"""1,000 deliveries and 10% duplicates, concurrently, against the real MongoDB-compatible server."""

from __future__ import annotations

import concurrent.futures
import random
import threading
import typing as t
import uuid

from tests.integration.router.service import Client, RouterProcess

JOBS = 1000
DUPLICATES = 100
THREADS = 16


def workflow_job(job_id: int, action: str = "queued") -> dict[str, t.Any]:
    return {
        "action": action,
        "workflow_job": {
            "id": job_id,
            "run_id": 900_000 + job_id // 4,
            "url": f"https://api.github.com/repos/octo-org/app/actions/jobs/{job_id}",
            "labels": ["self-hosted", "linux", "small" if job_id % 2 else "large"],
            "runner_name": None,
        },
        "repository": {"full_name": "octo-org/app"},
    }


def test_no_delivery_is_lost_and_no_job_is_stored_twice(router: RouterProcess, jobs: t.Any) -> None:
    rng = random.Random(11)
    originals = [(workflow_job(job_id), str(uuid.UUID(int=rng.getrandbits(128)))) for job_id in range(1, JOBS + 1)]
    # Half of the duplicates are the same delivery again (a retry), half a redelivery under a new id.
    duplicates = [
        (payload, guid if n % 2 else str(uuid.uuid4()))
        for n, (payload, guid) in enumerate(rng.sample(originals, DUPLICATES))
    ]
    deliveries = originals + duplicates
    rng.shuffle(deliveries)

    local = threading.local()

    def send(delivery: tuple[dict[str, t.Any], str]) -> tuple[int, str]:
        if not hasattr(local, "client"):
            local.client = router.client()
        client: Client = local.client
        answer = client.deliver(delivery[0], delivery=delivery[1])
        return answer.status, answer.body["result"] if answer.status == 200 else answer.body["message"]

    with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(send, deliveries))

    assert {status for status, _result in answers} == {200}, [answer for answer in answers if answer[0] != 200][:3]
    results = [result for _status, result in answers]
    # A job's first delivery to arrive inserts it; the other one only adds its delivery id, or nothing.
    assert results.count("inserted") == JOBS
    assert results.count("inserted") + results.count("updated") + results.count("duplicate") == JOBS + DUPLICATES
    assert results.count("duplicate") == DUPLICATES // 2
    assert jobs.count_documents({}) == JOBS
    stored = {doc["job_id"]: doc for doc in jobs.find({}, {"job_id": 1, "status": 1, "delivery_ids": 1, "pool": 1})}
    assert sorted(stored) == list(range(1, JOBS + 1))
    assert {doc["status"] for doc in stored.values()} == {"queued"}
    assert all(doc["pool"] == ("small" if job_id % 2 else "large") for job_id, doc in stored.items())
    expected_ids: dict[int, set[str]] = {}
    for payload, guid in deliveries:
        expected_ids.setdefault(payload["workflow_job"]["id"], set()).add(guid)
    assert all(set(doc["delivery_ids"]) == expected_ids[job_id] for job_id, doc in stored.items())

    metrics = router.metrics()
    counted = {
        result: metrics.get(f'ghr_router_deliveries_total{{action="queued",event="workflow_job",result="{result}"}}', 0)
        for result in ("inserted", "updated", "duplicate")
    }
    assert counted == {result: results.count(result) for result in counted}
    assert metrics["ghr_router_enqueue_seconds_count"] == JOBS + DUPLICATES
