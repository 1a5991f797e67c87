"""Benchmark of the webhook router: deliveries per second and latency, and what bounds them.

    python -m tests.sandbox.bench_router [--deliveries N] [--clients C] [--rate R]   (or: make bench-router)

Four measurements, all on loopback:

1. FerretDB alone: `JobQueue.enqueue` of fresh jobs, one client and C clients (what MongoDB costs).
2. The router service (``python -m ...router_service``) on FerretDB, C keep-alive clients as fast as it
   answers: throughput and p50/p99.
3. The same at a fixed rate of R deliveries per second (open loop): the latency GitHub sees at that load.
4. The router with an in-memory stand-in of the job queue instead of MongoDB: its own overhead.

The load generator runs on the same (2-core) machine and takes a share of the CPU; not a test,
nothing is asserted. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import pathlib
import statistics
import sys
import tempfile
import threading
import time
import typing as t
import uuid

import pymongo

from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.job import JobKey, new_job
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.mongo import MongoAccess
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import JobQueue
from tests.integration.router.service import Client, running, start, write_config
from tests.integration.router.test_load import workflow_job
from tests.sandbox.mongo import start_mongodb

UTC = datetime.UTC


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(quantile: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(quantile * len(ordered)))] * 1000, 2)

    return {"p50_ms": at(0.50), "p99_ms": at(0.99), "mean_ms": round(statistics.fmean(ordered) * 1000, 2)}


def bench_enqueue(uri: str, count: int, clients: int) -> dict[str, t.Any]:
    database = f"ghr_bench_{uuid.uuid4().hex[:8]}"
    queue = JobQueue(MongoAccess(uri, server_timeout=30), database=database)
    now = datetime.datetime.now(UTC)
    jobs = [
        new_job(JobKey("api.github.com", "octo/bench", n), pool="small", labels=["x64"], status="queued", now=now)
        for n in range(1, 2 * count + 1)
    ]

    def one(job: t.Any) -> float:
        started = time.perf_counter()
        queue.enqueue(job)
        return time.perf_counter() - started

    sequential = [one(job) for job in jobs[:count]]
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        parallel = list(pool.map(one, jobs[count:]))
    elapsed = time.perf_counter() - started
    queue.mongo.client.drop_database(database)
    queue.mongo.close()
    return {
        "one_client": percentiles(sequential),
        f"{clients}_clients": {**percentiles(parallel), "per_second": round(count / elapsed)},
    }


def closed_loop(
    port: int, count: int, clients: int, first_id: int, samples: list[float] | None = None
) -> dict[str, t.Any]:
    """`count` deliveries from `clients` keep-alive clients as fast as answered; latencies also go to `samples`."""
    local = threading.local()
    latencies: list[float] = [] if samples is None else samples
    errors = 0

    def send(job_id: int) -> None:
        nonlocal errors
        if not hasattr(local, "client"):
            local.client = Client(port)
        started = time.perf_counter()
        status = local.client.deliver(workflow_job(job_id), delivery=str(uuid.uuid4())).status
        latencies.append(time.perf_counter() - started)
        errors += status != 200

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(send, range(first_id, first_id + count)))
    elapsed = time.perf_counter() - started
    return {**percentiles(latencies), "per_second": round(count / elapsed), "errors": errors}


def open_loop(
    port: int, count: int, rate: float, first_id: int, clients: int = 32, samples: list[float] | None = None
) -> dict[str, t.Any]:
    """Deliveries started at `rate` per second whatever the answers; latency from the planned start."""
    local = threading.local()
    latencies: list[float] = [] if samples is None else samples
    errors = 0
    begin = time.perf_counter() + 0.2

    def send(n: int) -> None:
        nonlocal errors
        if not hasattr(local, "client"):
            local.client = Client(port)
        planned = begin + n / rate
        time.sleep(max(0.0, planned - time.perf_counter()))
        status = local.client.deliver(workflow_job(first_id + n), delivery=str(uuid.uuid4())).status
        latencies.append(time.perf_counter() - planned)
        errors += status != 200

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(send, range(count)))
    achieved = count / (time.perf_counter() - begin)
    return {
        **percentiles(latencies),
        "offered_per_second": rate,
        "achieved_per_second": round(achieved),
        "errors": errors,
    }


def serve_memory(config: str) -> int:
    """The router service with an in-memory stand-in of the job queue (a child process of the benchmark)."""
    import asyncio

    from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive import router_service
    from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.router_config import load_settings
    from tests.unit.plugins.module_utils.fakes import MemoryJobSink

    settings = load_settings(config)
    router_service.configure_logging(settings.log_format, settings.log_level)
    router, mongo = router_service.open_router(settings, sink=MemoryJobSink())
    app = router_service.build_app(router, lambda: None, router_service.RouterMetrics())
    asyncio.run(router_service.serve(app, settings))
    mongo.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--serve-memory", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_memory:
        return serve_memory(args.serve_memory)

    results: dict[str, t.Any] = {"deliveries": args.deliveries, "clients": args.clients}
    with tempfile.TemporaryDirectory(prefix="ghr-bench-router-") as tmp:
        work = pathlib.Path(tmp)
        mongodb = start_mongodb(work / "mongodb")
        try:
            results["ferretdb_enqueue"] = bench_enqueue(mongodb.uri, min(args.deliveries, 1000), args.clients)
            database = f"ghr_bench_{uuid.uuid4().hex[:8]}"
            # Logging as in production: one JSON line per delivery.
            config = write_config(work / "router", mongodb.uri, database)
            with running(config) as router:
                closed_loop(router.port, 200, args.clients, 10**9)  # warm up connections and code paths
                results["router_ferretdb_closed_loop"] = closed_loop(router.port, args.deliveries, args.clients, 1)
                results["router_ferretdb_at_rate"] = open_loop(router.port, args.deliveries, args.rate, 10**6)
            client: pymongo.MongoClient[dict[str, t.Any]] = pymongo.MongoClient(mongodb.uri)
            results["documents_stored"] = client[database]["jobs"].count_documents({})
            client.drop_database(database)
            client.close()
        finally:
            mongodb.stop()
        memory = start(
            config, command=[sys.executable, "-m", "tests.sandbox.bench_router", "--serve-memory", str(config)]
        )
        try:
            closed_loop(memory.port, 200, args.clients, 10**9)
            results["router_memory_closed_loop"] = closed_loop(memory.port, args.deliveries, args.clients, 1)
            results["router_memory_at_rate"] = open_loop(memory.port, args.deliveries, args.rate, 10**6)
        finally:
            memory.stop()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
