"""The reactive consumer against the sandbox and the test MongoDB server, through the real clients.

`ReactiveWorld` wires what a deployment has: consumers (threads here, or processes in the
kill tests) and a reconcile on a short schedule, sharing one queue and the pools' MongoDB
leases; jobs are queued in the GitHub simulator and their documents written as the router would.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import threading
import time
import typing as t
import urllib.parse

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import PoolSpec, parse_pool
from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import LockError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._lock import MongoLease, PoolLock
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.consumer import (
    Consumer,
    ConsumerOptions,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.job import JobKey, new_job
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.mongo import MongoAccess
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import JobQueue
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reconcile import (
    LockFactory,
    ReconcileOptions,
    Reconciler,
)
from tests.chaos import invariants
from tests.integration.reconcile.conftest import (  # pylint: disable=unused-import
    Core,
    _openstack_env,  # noqa: F401 (autouse: openstacksdk reads the sandbox's clouds.yaml)
    pool_dict,
)
from tests.integration.sandbox.conftest_github import TEST_CONFIG, unique
from tests.sandbox.mongo import MongoServer

UTC = datetime.UTC
CONTROLLER = "rx"


@dataclasses.dataclass
class ReactiveWorld:
    core: Core
    mongodb_uri: str
    database: str
    api_host: str
    repository: str
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)
    threads: list[threading.Thread] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)
    reconciles: int = 0
    doorbell: bool = False  # the queues of the router and the consumers ring and tail the doorbell
    skipped: list[str] = dataclasses.field(default_factory=list)  # reconcile rounds that found a lease held
    deletions: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (reason, name) the reconcile deleted

    @property
    def sandbox(self) -> t.Any:
        return self.core.sandbox

    # Wiring --------------------------------------------------------------------------------
    def pool(self, **overrides: t.Any) -> dict[str, t.Any]:
        """A pool with a label of its own, so that only its runners take its jobs."""
        label = unique("rx")
        return pool_dict(self.sandbox, labels=["self-hosted", "linux", label], **overrides)

    def queue(self, owner: str = "consumer", **kwargs: t.Any) -> JobQueue:
        queue = JobQueue(
            MongoAccess(self.mongodb_uri, server_timeout=30.0),
            database=self.database,
            owner=owner,
            doorbell=self.doorbell,
            **kwargs,
        )
        queue.ensure_indexes()
        return queue

    def locks(self, wait: float = 30.0) -> LockFactory:
        def lease(key: str) -> PoolLock:
            return MongoLease(
                self.mongodb_uri, self.database, "locks", key, ttl=30, wait_timeout=wait, poll_interval=0.05
            )

        return lease

    def consumer(self, pools: t.Sequence[dict[str, t.Any]], owner: str = "consumer", **options: t.Any) -> Consumer:
        queue_options = {k: options.pop(k) for k in ("lease_ttl", "backoff_base", "backoff_cap") if k in options}
        options.setdefault("poll_interval", 0.05)
        return Consumer(
            [parse_pool(p) for p in pools],
            self.queue(owner, **{"backoff_base": 0.5, "backoff_cap": 2.0, **queue_options}),
            self.core.github(timeout=30),
            self.core.cloud(timeout=30),
            self.locks(),
            ConsumerOptions(CONTROLLER, self.api_host, **options),
        )

    def start(self, name: str, target: t.Callable[[], None]) -> None:
        def guarded() -> None:
            try:
                target()
            except Exception as exc:  # reported by the test through `errors`
                self.errors.append(f"{name}: {type(exc).__name__}: {exc}")

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def start_consumer(
        self, pools: t.Sequence[dict[str, t.Any]], owner: str = "consumer", **options: t.Any
    ) -> Consumer:
        consumer = self.consumer(pools, owner, **options)
        self.start(owner, lambda: consumer.run(self.stop, renew_every=2.0))
        return consumer

    def start_reconcile(self, pools: t.Sequence[dict[str, t.Any]], interval: float = 1.0) -> None:
        """The scheduled reconcile beside the consumers: the same pools, leases and queue database."""
        specs = [parse_pool(p) for p in pools]
        reconciler = Reconciler(self.core.github(timeout=30), self.core.cloud(timeout=30), self.locks(wait=60))

        def loop() -> None:
            while not self.stop.wait(interval):
                try:
                    report = reconciler.run(specs, ReconcileOptions(CONTROLLER))
                except LockError as exc:
                    # A consumer killed while it held a pool's lease blocks it until the lease ends
                    # (its lock_ttl); the reconcile gives up on this round, as a scheduled one would.
                    self.skipped.append(str(exc))
                    continue
                self.reconciles += 1
                # A lease the consumers hold past the wait is a skipped round, not a failure.
                self.deletions.extend(
                    (reason, name)
                    for p in report.pools
                    for reason, names in p.execution.deleted.items()
                    for name in names
                )
                self.errors.extend(e for e in report.errors if "lease" not in e)

        self.start("reconcile", loop)

    def reconcile_once(self, pools: t.Sequence[dict[str, t.Any]]) -> t.Any:
        specs = [parse_pool(p) for p in pools]
        reconciler = Reconciler(self.core.github(timeout=30), self.core.cloud(timeout=30), self.locks(wait=120))
        return reconciler.run(specs, ReconcileOptions(CONTROLLER))

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)

    # Jobs ------------------------------------------------------------------------------------
    def enqueue(
        self, pool: dict[str, t.Any], count: int, duration: float = 0.5, queue: JobQueue | None = None, **job: t.Any
    ) -> list[int]:
        """Queue `count` jobs in the GitHub simulator for `pool`, and their documents as the router writes them."""
        labels = job.pop("labels", pool["labels"])
        answer = self.sandbox.control.post(
            "/jobs", {"repository": self.repository, "labels": labels, "count": count, "duration": duration, **job}
        )
        ids = [int(j["id"]) for j in answer["jobs"]]
        target = queue or self.queue("router")
        now = datetime.datetime.now(UTC)
        for job_id in ids:
            key = JobKey(self.api_host, self.repository, job_id)
            target.enqueue(
                new_job(key, pool=pool["name"], labels=labels, status="queued", now=now, run_id=answer["run_id"])
            )
        return ids

    def github_jobs(self, ids: t.Iterable[int]) -> dict[int, dict[str, t.Any]]:
        wanted = set(ids)
        jobs = self.sandbox.control.get(f"/jobs?repository={self.repository}")["jobs"]
        return {int(j["id"]): j for j in jobs if int(j["id"]) in wanted}

    def wait_completed(self, ids: t.Sequence[int], timeout: float) -> None:
        try:
            self.core.wait_for(
                f"{len(ids)} jobs completed",
                lambda: self._fail_fast() or all(j["status"] == "completed" for j in self.github_jobs(ids).values()),
                timeout,
            )
        except AssertionError:
            jobs = self.github_jobs(ids)  # what GitHub, the queue and the simulators say of the stragglers
            statuses = collections.Counter(j["status"] for j in jobs.values())
            queue = self.queue("check")
            waiting = [i for i, j in jobs.items() if j["status"] != "completed"][:5]
            docs = {i: queue.mongo.call("debug", lambda i=i: queue._jobs.find_one({"job_id": i})) for i in waiting}
            names = {doc.get("runner_name") for doc in docs.values() if doc}
            related = [
                invariants.event_line(e) for e in self.sandbox.events() if names & {e.get("name"), e.get("runner_name")}
            ]
            events = self.sandbox.events()
            registered = {
                e["name"] for e in events if e["type"] == "runner_register" and e["name"].startswith(CONTROLLER)
            }
            ran = collections.Counter(e["runner_name"] for e in events if e["type"] == "job_in_progress")
            all_docs = queue.mongo.call("debug", lambda: list(queue._jobs.find({"job_id": {"$in": list(jobs)}})))
            doc_statuses = collections.Counter(d.get("status") for d in all_docs)
            raise AssertionError(  # noqa: B904 (the timeout says nothing; this says why)
                f"jobs not completed: {dict(statuses)}; documents {dict(doc_statuses)}; {len(registered)} runners"
                f" registered, {sum(1 for n in registered if ran[n])} ran a job;"
                f" e.g. {[jobs[i] for i in waiting]}; documents {docs};"
                f" their runners' events: {related}; reconcile deletions: {self.deletions}"
            )

    def _fail_fast(self) -> bool:
        assert not self.errors, self.errors
        return False

    def spec(self, pool: dict[str, t.Any]) -> PoolSpec:
        return parse_pool(pool)

    # Invariants, from the simulators' own records ---------------------------------------------
    def creates_per_name(self, pool: dict[str, t.Any]) -> collections.Counter[str]:
        prefix = f"{CONTROLLER}-{pool['name']}-"
        return collections.Counter(
            e["name"] for e in self.sandbox.events("server_create") if e["name"].startswith(prefix)
        )

    def over_max(self, pools: t.Sequence[dict[str, t.Any]]) -> list[str]:
        state = self.sandbox.control.get("/state")
        limits = {p["name"]: p["max_runners"] for p in pools}
        timeout = max(p["bootstrap_timeout"] for p in pools)
        found = invariants.over_max_runners(state, CONTROLLER, limits, timeout, time.time(), [], 0.0)
        return [v.message for v in found]

    def watch_max_runners(self, pools: t.Sequence[dict[str, t.Any]], seen: list[str]) -> None:
        """Check max_runners against the simulators' state until the world stops; breaches into `seen`."""

        def loop() -> None:
            while not self.stop.wait(0.2):
                seen.extend(self.over_max(pools))

        self.start("max-runners-watch", loop)


@pytest.fixture
def world(sandbox: t.Any, tmp_path: t.Any, mongodb: MongoServer, database: str) -> t.Iterator[ReactiveWorld]:
    sandbox.clear_faults()
    sandbox.reset_config()
    sandbox.set_config(TEST_CONFIG)
    core = Core(sandbox, tmp_path / "locks", controller_id=CONTROLLER)
    api_host = urllib.parse.urlsplit(sandbox.env["GITHUB_API_URL"]).netloc
    reactive = ReactiveWorld(core, mongodb.uri, database, api_host, sandbox.env["GITHUB_REPOSITORY"])
    try:
        yield reactive
    finally:
        reactive.close()
        with contextlib.suppress(Exception):
            sandbox.clear_faults()
            sandbox.reset_config()
