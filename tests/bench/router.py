"""Webhook router scenarios: deliveries per second, latency, and the router's peak memory.

The router service runs as users run it, on the sandbox's MongoDB-compatible server (FerretDB),
and once more with an in-memory stand-in of the job queue: the difference is what the database
costs. FerretDB's own rate (the queue's `enqueue` from 8 threads, no HTTP) bounds the first.
"""

from __future__ import annotations

import os
import pathlib
import sys
import typing as t
import uuid

import pymongo

from tests.bench.driver import Bench, Scenario
from tests.bench.results import Measurement, Target, percentile
from tests.integration.router.service import RouterProcess, start, write_config
from tests.sandbox.bench_router import bench_enqueue, closed_loop, open_loop
from tests.sandbox.launcher import CHILDREN_FILE

CLIENTS = 8
RATE = 500.0  # deliveries per second of the open-loop run (the target's rate)


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM), MiB."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used so far."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def database_pid(bench: Bench) -> int | None:
    """FerretDB's process, which the sandbox started (None when MongoDB came from MONGODB_URI)."""
    try:
        return int((bench.workdir / "sandbox" / CHILDREN_FILE).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def load(bench: Bench, router: RouterProcess, name: str, deliveries: int, m: Measurement) -> None:
    """Closed loop (as fast as answered) and open loop (at RATE): throughput, p50/p99, CPU, peak RSS."""
    closed_loop(router.port, 100, CLIENTS, 10**9)  # warm up connections and code paths
    closed: list[float] = []
    # Where the CPU goes per delivery: the router's process and the database's (both share the cores).
    database = database_pid(bench) if name == "ferretdb" else None
    before = cpu_seconds(router.process.pid), cpu_seconds(database) if database else 0.0
    numbers = closed_loop(router.port, deliveries, CLIENTS, 1, samples=closed)
    m.add(
        f"router.{name}.router_cpu_per_delivery",
        (cpu_seconds(router.process.pid) - before[0]) * 1000 / deliveries,
        "ms",
    )
    if database:
        m.add(f"router.{name}.database_cpu_per_delivery", (cpu_seconds(database) - before[1]) * 1000 / deliveries, "ms")
    m.add(f"router.{name}.deliveries_per_s", numbers["per_second"], "1/s", Target(">=", 500))
    m.add(f"router.{name}.p50", percentile(closed, 0.50), "ms")
    m.add(f"router.{name}.p99", percentile(closed, 0.99), "ms")
    m.add(f"router.{name}.errors", numbers["errors"] + 0.0, "count", Target("==", 0))
    paced: list[float] = []
    at_rate = open_loop(router.port, deliveries, RATE, 10**6, samples=paced)
    m.add(f"router.{name}.at_500_per_s.p50", percentile(paced, 0.50), "ms")
    m.add(f"router.{name}.at_500_per_s.p99", percentile(paced, 0.99), "ms", Target("<=", 20))
    m.add(f"router.{name}.at_500_per_s.achieved_per_s", at_rate["achieved_per_second"], "1/s")
    m.add(f"router.{name}.peak_rss", peak_rss_mib(router.process.pid), "MiB")
    m.distributions[f"router {name}, closed loop ({CLIENTS} clients)"] = closed
    m.distributions[f"router {name}, {RATE:.0f} deliveries/s"] = paced


def router(bench: Bench) -> Measurement:
    deliveries = 300 if bench.quick else 2000
    m = Measurement()
    work = bench.workdir / f"router-{uuid.uuid4().hex[:6]}"
    database = f"ghr_bench_{uuid.uuid4().hex[:8]}"
    enqueue = bench_enqueue(bench.mongodb_uri, min(deliveries, 1000), CLIENTS)
    m.add("router.ferretdb_enqueue_only.per_s", enqueue[f"{CLIENTS}_clients"]["per_second"], "1/s")
    m.add("router.ferretdb_enqueue_only.p50", enqueue[f"{CLIENTS}_clients"]["p50_ms"], "ms")
    m.add("router.ferretdb_enqueue_only.p99", enqueue[f"{CLIENTS}_clients"]["p99_ms"], "ms")
    m.add("router.ferretdb_enqueue_only.one_client_p50", enqueue["one_client"]["p50_ms"], "ms")
    config = write_config(work, bench.mongodb_uri, database)
    service = start(config)
    try:
        load(bench, service, "ferretdb", deliveries, m)
    finally:
        service.stop()
    client: pymongo.MongoClient[dict[str, t.Any]] = pymongo.MongoClient(bench.mongodb_uri)
    stored = client[database]["jobs"].count_documents({})
    client.drop_database(database)
    client.close()
    # Every distinct job stored once: warm-up, closed and open loop deliveries.
    m.add("router.ferretdb.jobs_stored", stored, "count", Target("==", 100 + 2 * deliveries))
    memory = start(config, command=[sys.executable, "-m", "tests.sandbox.bench_router", "--serve-memory", str(config)])
    try:
        load(bench, memory, "memory", deliveries, m)
    finally:
        memory.stop()
    return m


SCENARIOS = [
    Scenario(
        "router",
        "webhook router on FerretDB and on an in-memory queue: 2,000 deliveries (300 when quick), 8 clients",
        router,
        quick=True,
        parameters={"clients": CLIENTS, "open_loop_rate_per_s": RATE},
    )
]
