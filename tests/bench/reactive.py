"""Reactive consumer scenarios: job document inserted -> create-server request, jobs per second, peak RSS.

The consumer service runs as users run it (`python -m ...consumer_service`, one process per
consumer, all on one queue database of the sandbox's FerretDB). The router's part is played
here: the job is queued in the GitHub simulator first, then its document is inserted as the
router inserts it. The latency of a job is the sandbox's own `server_create` event time minus
the wall-clock time just before the insert (both clocks are this machine's).

Two loads per variant: jobs inserted at a steady rate well below what the consumers serve
(the latency an idle queue gives a job), then a burst inserted at once (jobs per second, from
the first insert to the last create request). The servers never boot during the scenario
(the sandbox's boot delay is set past it): the simulated runner agents would run jobs on the
same cores, which is the sandbox's cost and not the consumer's.
"""

from __future__ import annotations

import contextlib
import datetime
import pathlib
import signal
import socket
import time
import types
import typing as t
import urllib.error
import urllib.request
import uuid

import pymongo
import yaml

from ansible_collections.selfhosted.github_runners.plugins.module_utils._identity import reactive_runner_name
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.job import JobKey, new_job
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.mongo import MongoAccess
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import JobQueue
from tests.bench.driver import Bench, Scenario
from tests.bench.reconcile import CONTROLLER, SandboxCloud, clear, wait_for
from tests.bench.results import Measurement, Target, percentile
from tests.bench.router import peak_rss_mib
from tests.integration.consumer import service

#: The documented default (docs/reactive-consumer.md, the role's reactive_consumer_poll_interval).
POLL_INTERVAL = 0.25
LATENCIES = (0.0, 0.05)
CONSUMERS = (1, 2, 4)
#: The simulated APIs the latency applies to (every one the consumer calls; not the control API).
SERVICES = ("github", "keystone", "glance", "neutron", "nova")
RATE = 2.0  # jobs per second of the steady load: below what one consumer serves on a busy 2-core machine
UTC = datetime.UTC


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return bool(answer.status == 200)
    except (OSError, urllib.error.URLError):
        return False


class Variant:
    """`consumers` consumer processes on one queue and one pool, every API call `latency` seconds late."""

    def __init__(self, bench: Bench, latency: float, consumers: int, doorbell: bool) -> None:
        self.bench = bench
        self.latency = latency
        self.consumers = consumers
        self.doorbell = doorbell
        ms = round(latency * 1000)
        self.prefix = f"reactive.latency{ms}ms.consumers{consumers}" + ("" if doorbell else ".poll_only")
        # A pool (and so a label) of its own: no runner of another variant takes its jobs.
        self.pool_name = f"rx{ms}c{consumers}" + ("" if doorbell else "p")
        self.backend = SandboxCloud(bench)
        self.pool = {**self.backend.pool(self.pool_name, 0), "max_runners": 1000}
        self.database = f"ghr_bench_rx_{uuid.uuid4().hex[:8]}"
        self.api_host = bench.env["GITHUB_API_URL"].split("://", 1)[1].split("/", 1)[0]
        self.repository = bench.env["GITHUB_REPOSITORY"]
        self.queue = JobQueue(
            MongoAccess(bench.mongodb_uri, server_timeout=30.0),
            database=self.database,
            owner="bench-router",
            doorbell=doorbell,
        )
        self.processes: list[service.ConsumerProcess] = []

    # The consumers -------------------------------------------------------------------------
    def start(self, work: pathlib.Path) -> None:
        self.queue.ensure_indexes()
        sandbox = types.SimpleNamespace(env=self.bench.env)
        ports = []
        for number in range(self.consumers):
            port = free_port()
            config = service.write_config(
                work / f"consumer{number}",
                sandbox,
                self.bench.mongodb_uri,
                self.database,
                [self.pool],
                CONTROLLER,
                poll_interval=POLL_INTERVAL,
                doorbell=self.doorbell,
                lease_ttl=60,
                metrics_port=port,
            )
            settings = yaml.safe_load(config.read_text())
            # GitHub's write pacing (80, then 80 a minute) would make the burst measure the bucket.
            settings["github"].update(write_burst=10000, writes_per_minute=10000)
            config.write_text(yaml.safe_dump(settings, sort_keys=False))
            self.processes.append(service.start(config, sandbox))
            ports.append(port)
        try:
            wait_for(f"{self.consumers} consumers healthy", lambda: self.running() and all(map(healthy, ports)), 180)
        except RuntimeError as exc:
            said = [line for p in self.processes for line in p.lines[-5:]]
            raise RuntimeError(f"{exc}; the consumers said: {said}") from None

    def running(self) -> bool:
        """True while every consumer runs (one that exited stops the wait at once)."""
        if any(p.process.poll() is not None for p in self.processes):
            raise RuntimeError("a consumer exited")
        return True

    def stop(self) -> float:
        """Stop the consumers (SIGTERM); the largest peak RSS among them, MiB."""
        peak = max((peak_rss_mib(p.process.pid) for p in self.processes), default=0.0)
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                process.signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except Exception:  # a consumer that does not stop is killed; the scenario goes on
                process.kill()
        return peak

    # Jobs --------------------------------------------------------------------------------------
    def submit(self, count: int, rate: float | None) -> dict[str, float]:
        """Queue `count` jobs on GitHub, then insert their documents (at `rate` per second, or at once).

        The wall-clock time just before each insert, by the runner name the consumer gives its job.
        """
        labels = self.pool["labels"]
        answer = self.bench.control.post(
            "/jobs", {"repository": self.repository, "labels": labels, "count": count, "duration": 0.2}
        )
        ids = [int(j["id"]) for j in answer["jobs"]]
        inserted: dict[str, float] = {}
        begun = time.monotonic()
        for number, job_id in enumerate(ids):
            if rate is not None:
                time.sleep(max(0.0, begun + number / rate - time.monotonic()))
            job = new_job(
                JobKey(self.api_host, self.repository, job_id),
                pool=self.pool_name,
                labels=labels,
                status="queued",
                now=datetime.datetime.now(UTC),
                run_id=answer["run_id"],
            )
            inserted[reactive_runner_name(CONTROLLER, self.pool_name, job_id)] = time.time()
            self.queue.enqueue(job)
        return inserted

    def creates(self, names: t.Collection[str], timeout: float = 300) -> dict[str, float]:
        """The sandbox's `server_create` times of `names`, once every one of them has one."""
        found: dict[str, float] = {}

        def all_created() -> bool:
            for event in self.bench.control.get("/events?type=server_create"):
                if event["name"] in names:
                    found.setdefault(event["name"], float(event["time"]))
            return len(found) == len(names)

        wait_for(f"{len(names)} create-server requests", all_created, timeout)
        return found

    def measure(self, m: Measurement, steady: int, burst: int) -> None:
        # Connections, caches (runner group, flavor, image, network) and code paths warmed up.
        self.creates(self.submit(2 * self.consumers, None))
        inserted = self.submit(steady, RATE)
        created = self.creates(inserted)
        latencies = [created[name] - at for name, at in inserted.items()]
        m.add(f"{self.prefix}.p50", percentile(latencies, 0.50), "ms", self.target(50))
        m.add(f"{self.prefix}.p95", percentile(latencies, 0.95), "ms")
        m.add(f"{self.prefix}.p99", percentile(latencies, 0.99), "ms", self.target(250))
        label = f"consumers x{self.consumers}, {round(self.latency * 1000)} ms API latency" + (
            "" if self.doorbell else ", polling only"
        )
        m.distributions[f"reactive: {label}"] = latencies
        inserted = self.submit(burst, None)
        created = self.creates(inserted)
        span = max(created.values()) - min(inserted.values())
        m.add(f"{self.prefix}.burst{burst}.jobs_per_s", burst / span, "1/s")
        m.add(f"{self.prefix}.burst{burst}.p50", percentile([created[n] - at for n, at in inserted.items()], 0.5), "ms")

    def target(self, value: float) -> Target | None:
        return Target("<=", value) if self.latency == 0 else None

    def close(self) -> None:
        client: pymongo.MongoClient[dict[str, t.Any]] = pymongo.MongoClient(self.bench.mongodb_uri)
        client.drop_database(self.database)
        client.close()


def run_variant(bench: Bench, m: Measurement, latency: float, consumers: int, doorbell: bool = True) -> None:
    steady, burst = (10, 10) if bench.quick else (20, 40)
    variant = Variant(bench, latency, consumers, doorbell)
    work = bench.workdir / f"reactive-{uuid.uuid4().hex[:6]}"
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(variant.close)
        cleanup.callback(clear, bench, variant.backend, variant.pool_name)
        cleanup.callback(bench.control.delete, "/faults")
        # The servers stay unbooted: no simulated runner agent competes for the cores (see above).
        bench.control.post("/config", {"openstack.boot_delay": 3600})
        variant.start(work)
        try:
            if latency:
                for name in SERVICES:
                    bench.control.post("/faults", {"kind": "latency", "service": name, "delay": latency, "count": None})
            variant.measure(m, steady, burst)
        finally:
            m.add(f"{variant.prefix}.consumer_peak_rss", variant.stop(), "MiB")


def reactive(bench: Bench) -> Measurement:
    m = Measurement()
    variants: list[tuple[float, int]] = (
        [(0.0, 1), (0.05, 2)] if bench.quick else [(lat, n) for lat in LATENCIES for n in CONSUMERS]
    )
    for latency, consumers in variants:
        run_variant(bench, m, latency, consumers)
    if not bench.quick:
        run_variant(bench, m, 0.0, 1, doorbell=False)
    m.notes.append(
        f"poll_interval {POLL_INTERVAL} s (the documented default), with the doorbell unless the figure's name"
        " says poll_only;"
        f" steady load {RATE:g} jobs/s; at 50 ms the create request's own latency is inside the figure"
    )
    return m


SCENARIOS = [
    Scenario(
        "reactive",
        "reactive consumer: job inserted -> create-server request, 0 and 50 ms API latency, 1, 2 and 4 consumers",
        reactive,
        runs=2,  # seven variants of half a minute each: three runs would take `make bench` past 15 minutes
        quick=True,
        parameters={
            "poll_interval_s": POLL_INTERVAL,
            "steady_rate_per_s": RATE,
            "consumers": list(CONSUMERS),
            "latencies_ms": [0, 50],
        },
    )
]
