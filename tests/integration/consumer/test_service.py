"""The consumer service as a process: metrics, health, SIGTERM, SIGKILL at random points."""

from __future__ import annotations

import collections
import datetime
import os
import pathlib
import random
import signal
import socket
import time
import typing as t

import pytest

from tests.chaos import invariants
from tests.integration.consumer import service
from tests.integration.consumer.conftest import CONTROLLER, ReactiveWorld

pytestmark = pytest.mark.sandbox


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(world: ReactiveWorld, tmp_path: t.Any, pools: list[dict[str, t.Any]], **consumer: t.Any) -> t.Any:
    return service.write_config(
        tmp_path / "consumer", world.sandbox, world.mongodb_uri, world.database, pools, CONTROLLER, **consumer
    )


def test_the_service_serves_jobs_reports_metrics_and_stops_on_sigterm(world: ReactiveWorld, tmp_path: t.Any) -> None:
    pool = world.pool(max_runners=4)
    port = _free_port()
    process = service.start(_config(world, tmp_path, [pool], metrics_port=port), world.sandbox)
    try:
        world.start_reconcile([pool])
        ids = world.enqueue(pool, 6, duration=0.3)
        world.wait_completed(ids, timeout=180)
        world.core.wait_for("/healthz", lambda: process.get(port, "/healthz")[0] == 200, timeout=60)
        status, text = process.get(port, "/metrics")
        assert status == 200
        spawned = [
            line
            for line in text.splitlines()
            if line.startswith(f'ghr_consumer_jobs_spawned_total{{pool="{pool["name"]}"}}')
        ]
        assert spawned and float(spawned[0].split()[-1]) >= 1, text
        assert "ghr_consumer_claim_to_spawn_seconds_bucket" in text and "ghr_consumer_api_calls" in text
        # More jobs than room, then SIGTERM: it exits 0, and no job stays claimed by it.
        more = world.enqueue(pool, 8, duration=30)
        world.core.wait_for("a claim", lambda: any("spawned" in line for line in process.lines[-5:]), timeout=60)
        process.signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, process.lines[-20:]
    finally:
        if process.process.poll() is None:
            process.kill()
    queue = world.queue("check")
    statuses = collections.Counter(
        queue.get(f"{world.api_host}/{world.repository.lower()}/{i}").status.value for i in more
    )
    assert set(statuses) <= {"queued", "spawned", "in_progress", "completed"}, statuses
    assert any('"consumer stopped"' in line for line in process.lines), process.lines[-10:]


@pytest.mark.timeout(1500)
def test_sigkill_at_random_points_loses_no_job(world: ReactiveWorld, tmp_path: t.Any) -> None:
    """50 SIGKILLs during a 100-job run: every job runs, never two runners of a job at once, nothing leaked."""
    pool = world.pool(max_runners=10, bootstrap_timeout=120)
    # Each kill ends the attempts it held, and attempts count towards max_attempts (a job that keeps
    # taking its consumers down goes to dead): with 50 kills, the default of 5 would kill jobs too.
    config = _config(world, tmp_path, [pool], lease_ttl=10, max_attempts=100)
    world.start_reconcile([pool], interval=1.0)
    ids = world.enqueue(pool, 100, duration=0.5)
    rng = random.Random(4)
    kills = 0
    while kills < 50:
        process = service.start(config, world.sandbox)
        time.sleep(rng.uniform(0.2, 2.5))
        process.kill()
        kills += 1
    process = service.start(config, world.sandbox)
    try:
        world.wait_completed(ids, timeout=900)
    finally:
        process.signal(signal.SIGTERM)
        process.wait(timeout=60)
    events = world.sandbox.events()
    assert invariants.job_on_two_runners(events, 0.0) == []
    # A job's runner name is derived from the job: two live VMs of that name at once would be two runners for it.
    assert invariants.vms_of_one_name(events, 0.0, {}) == []
    world.core.wait_for("no VM left", lambda: not world.core.servers(pool["name"]), timeout=300)
    world.core.wait_for("no runner left", lambda: not world.core.runners(pool["name"]), timeout=300)


def _cpu_seconds(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_bad_input_ends_dead_or_in_retry_with_the_reason_and_costs_no_cpu(
    world: ReactiveWorld, tmp_path: t.Any
) -> None:
    pool = world.pool(max_runners=4)
    queue = world.queue("router")
    jobs = queue.mongo.collection(world.database, "jobs")
    now = datetime.datetime.now(datetime.UTC)
    prefix = f"{world.api_host}/{world.repository.lower()}"

    def doc(job_id: int, **fields: t.Any) -> dict[str, t.Any]:
        base = {
            "_id": f"{prefix}/{job_id}",
            "job_id": job_id,
            "repository": world.repository,
            "labels": pool["labels"],
            "pool": pool["name"],
            "status": "queued",
            "received_at": now,
            "updated_at": now,
            "not_before": now,
        }
        return {**base, **fields}

    poison = {
        "missing fields": {"_id": f"{prefix}/1001", "pool": pool["name"], "status": "queued"},
        "labels the pool lacks": doc(1002, labels=["self-hosted", "gpu-a100"]),
        "another host": doc(1003, _id=f"ghes.example.com/{world.repository.lower()}/1003"),
        "oversized labels": doc(1004, labels=[f"l{i}" for i in range(500)]),
        "job not found": doc(1005),
    }
    # GitHub failing on the job's lookup: retried with backoff, then served once GitHub answers.
    (flaky,) = world.enqueue(pool, 1, duration=0.3)
    world.sandbox.add_fault(
        kind="status",
        service="github",
        method="GET",
        route="/repos/{owner}/{repo}/actions/jobs/{job_id}",
        status=503,
        count=None,  # every retry of the client fails too, until cleared
    )
    process = service.start(_config(world, tmp_path, [pool], max_attempts=10), world.sandbox)
    try:

        def outcome(doc_id: str) -> t.Any:
            return jobs.find_one({"_id": doc_id})

        world.core.wait_for(
            "a retry after GitHub's 503", lambda: "503" in (outcome(f"{prefix}/{flaky}").get("last_error") or ""), 60
        )
        world.sandbox.clear_faults()
        jobs.insert_many(list(poison.values()))

        try:
            world.core.wait_for(
                "the poison dead", lambda: all(outcome(d["_id"])["status"] == "dead" for d in poison.values()), 120
            )
        except AssertionError:
            raise AssertionError({what: outcome(d["_id"]) for what, d in poison.items()}) from None
        reasons = {what: outcome(d["_id"])["last_error"] for what, d in poison.items()}
        assert "invalid job document: repository" in reasons["missing fields"]
        assert "offers labels" in reasons["labels the pool lacks"]
        assert "ghes.example.com" in reasons["another host"]
        assert "labels" in reasons["oversized labels"]
        assert "not found (404)" in reasons["job not found"]
        world.wait_completed([flaky], timeout=120)
        served = outcome(f"{prefix}/{flaky}")
        assert served["attempts"] >= 2 and "503" in (served["last_error"] or ""), served
        # Only poison left: the consumer polls, and nothing spins.
        before = _cpu_seconds(process.process.pid)
        time.sleep(5)
        assert _cpu_seconds(process.process.pid) - before < 2.5  # half a core at most, polling every 50 ms
        assert process.process.poll() is None, process.lines[-20:]
    finally:
        process.signal(signal.SIGTERM)
        process.wait(timeout=60)
