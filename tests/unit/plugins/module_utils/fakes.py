"""Small in-memory fakes of the core's GitHub, cloud and job queue ports, for unit tests."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import itertools
import threading
import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import PoolSpec
from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import (
    CloudError,
    LockError,
    QueueError,
    RunnerError,
    UnresolvedError,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._identity import parse_vm_metadata, pool_tag
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import (
    GithubRunner,
    QueuedJob,
    QueuedJobScan,
    Scope,
    VmInfo,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._openstack import pool_lookups
from ansible_collections.selfhosted.github_runners.plugins.module_utils._ratelimit import GithubRate
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.job import (
    Job,
    report_changes,
    validate_job_document,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import EnqueueOutcome

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
MUTATING = {"generate_jit_config", "delete_runner", "create_server", "delete_server"}


class FakeGithub:
    def __init__(self) -> None:
        self.runners: dict[Scope, dict[int, GithubRunner]] = collections.defaultdict(dict)
        self.calls: collections.Counter[str] = collections.Counter()
        self.log: list[tuple[str, t.Any]] = []
        self.queued: dict[Scope, list[QueuedJob]] = {}
        # Runners that exist but that listings miss (as while pages shift).
        self.unlisted: set[int] = set()
        self.not_before: datetime.datetime | None = None  # as if GitHub had asked to wait until then
        # Listings that fail, per scope (as for a renamed repository or an organization the token cannot see).
        self.list_errors: dict[Scope, RunnerError] = {}
        self._ids = itertools.count(1000)
        self._lock = threading.Lock()

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def _record(self, op: str, arg: t.Any) -> None:
        with self._lock:
            self.calls[op] += 1
            self.log.append((op, arg))

    def add(self, scope: Scope, name: str, *, online: bool = True, busy: bool = False) -> GithubRunner:
        runner = GithubRunner(next(self._ids), name, online, busy, ("self-hosted",))
        self.runners[scope][runner.id] = runner
        return runner

    def list_runners(self, scope: Scope) -> list[GithubRunner]:
        self._record("list_runners", scope)
        if scope in self.list_errors:
            raise self.list_errors[scope]
        return [r for r in self.runners[scope].values() if r.id not in self.unlisted]

    def generate_jit_config(
        self, scope: Scope, name: str, labels: t.Sequence[str], runner_group_id: int, work_folder: str = "_work"
    ) -> tuple[GithubRunner, str]:
        self._record("generate_jit_config", name)
        with self._lock:
            runner = GithubRunner(next(self._ids), name, False, False, tuple(labels))
            self.runners[scope][runner.id] = runner
        return runner, "SklUQ09ORklH"

    def delete_runner(self, scope: Scope, runner_id: int) -> t.Literal["deleted", "not_found", "busy"]:
        self._record("delete_runner", runner_id)
        with self._lock:
            runner = self.runners[scope].get(runner_id)
            if runner is None:
                return "not_found"
            if runner.busy:
                return "busy"
            del self.runners[scope][runner_id]
            return "deleted"

    def runner_exists(self, scope: Scope, runner_id: int) -> bool:
        self._record("runner_exists", (scope, runner_id))
        return runner_id in self.runners[scope]

    def runner_group_id(self, scope: Scope, name: str | None) -> int:
        return 1

    def list_queued_jobs(
        self, scope: Scope, *, max_requests: int | None = None, rate_limit_floor: int = 0
    ) -> QueuedJobScan:
        self._record("list_queued_jobs", scope)
        if scope in self.list_errors:
            raise self.list_errors[scope]
        return QueuedJobScan(tuple(self.queued.get(scope, [])), requests=1, repositories=1)

    def rate_status(self) -> GithubRate:
        return GithubRate(remaining=4000, write_wait=0.0, not_before=self.not_before)

    def hold_mutations_until(self, until: datetime.datetime) -> None:
        self.not_before = max(self.not_before or until, until)


class FakeCloud:
    def __init__(self, clock: t.Callable[[], datetime.datetime] = lambda: NOW) -> None:
        self.servers: dict[str, VmInfo] = {}
        self.calls: collections.Counter[str] = collections.Counter()
        self.log: list[tuple[str, t.Any]] = []
        self.fail_create: RunnerError | None = None
        self.fail_list: RunnerError | None = None
        # A Nova fault message: every server created from now on lists in ERROR with it.
        self.boot_fault: str | None = None
        # Names the cloud does not know, per kind ("flavor", "image", "network", "security_group").
        self.unknown: dict[str, set[str]] = collections.defaultdict(set)
        self._looked_up: dict[tuple[str, str], bool] = {}  # answers of the run: found or not
        self.clock = clock
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def list_bytes(self) -> int:
        return 100 * self.calls["list_servers"]  # a nominal size per listing

    def _record(self, op: str, arg: t.Any) -> None:
        with self._lock:
            self.calls[op] += 1
            self.log.append((op, arg))

    def add(
        self,
        name: str,
        pool: str,
        *,
        status: str = "ACTIVE",
        age: float = 60.0,
        runner_id: int | None = None,
        scope: Scope | None = None,
        spec: str | None = None,
    ) -> VmInfo:
        """A server as listed; `scope` is its ghr_scope (None: created before scopes were recorded), `spec` its ghr_spec."""
        created = NOW - datetime.timedelta(seconds=age)
        vm = VmInfo(f"vm-{next(self._ids)}", name, status, created, pool, runner_id, scope=scope, spec=spec)
        self.servers[vm.id] = vm
        return vm

    def list_servers(self, controller_id: str, pool: str | None = None) -> list[VmInfo]:
        self._record("list_servers", pool)
        if self.fail_list is not None:
            raise self.fail_list
        return [vm for vm in self.servers.values() if pool is None or vm.pool == pool]

    def resolve(self, pool: PoolSpec) -> None:
        for field, kind, name in pool_lookups(pool):
            key = (kind, name)
            if key not in self._looked_up:  # once per name and run, as the real client caches
                self._record(f"find_{kind}", name)
                self._looked_up[key] = name not in self.unknown[kind]
            if not self._looked_up[key]:
                raise UnresolvedError(field, f"no {kind.replace('_', ' ')} named {name!r}")

    def create_server(
        self, name: str, pool: PoolSpec, user_data: str, metadata: t.Mapping[str, str], tags: t.Sequence[str]
    ) -> str:
        self._record("create_server", name)
        if self.fail_create is not None:
            raise self.fail_create
        assert pool_tag(pool.name) in tags
        status = "BUILD" if self.boot_fault is None else "ERROR"
        recorded = parse_vm_metadata(metadata)
        with self._lock:
            vm = VmInfo(
                f"vm-{next(self._ids)}",
                name,
                status,
                self.clock(),
                pool.name,
                recorded.runner_id,
                fault=self.boot_fault,
                scope=recorded.scope,
                spec=recorded.spec,
            )
            self.servers[vm.id] = vm
        return vm.id

    def boot(self) -> None:
        """What Nova does after a while: servers in BUILD become ACTIVE."""
        with self._lock:
            for vm_id, vm in list(self.servers.items()):
                if vm.status == "BUILD":
                    self.servers[vm_id] = dataclasses.replace(vm, status="ACTIVE")

    def delete_server(self, server_id: str) -> t.Literal["deleted", "not_found"]:
        self._record("delete_server", server_id)
        with self._lock:
            return "deleted" if self.servers.pop(server_id, None) else "not_found"


def mutating_calls(*clients: FakeGithub | FakeCloud) -> int:
    return sum(n for c in clients for op, n in c.calls.items() if op in MUTATING)


class MemoryLock:
    """A pool lock that records who held it and keeps its state in memory.

    Set `lost_after` to lose the lock after that many `ensure_held` checks passed.
    """

    states: t.ClassVar[dict[str, dict[str, t.Any]]] = {}
    renew_interval = None

    def __init__(self, key: str, held: list[str], lost_after: int | None = None) -> None:
        self.key = key
        self.held = held
        self.lost_after = lost_after
        self.checks = 0

    def ensure_held(self) -> None:
        self.checks += 1
        if self.lost_after is not None and self.checks > self.lost_after:
            raise LockError(f"lease {self.key!r} was lost")

    def __enter__(self) -> MemoryLock:
        self.held.append(self.key)
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def renew(self) -> None:
        self.held.append(f"renew {self.key}")

    def load_state(self) -> dict[str, t.Any]:
        return dict(self.states.get(self.key, {}))

    def save_state(self, state: t.Mapping[str, t.Any]) -> None:
        self.ensure_held()
        self.states[self.key] = dict(state)


__all__ = ["NOW", "CloudError", "FakeCloud", "FakeGithub", "MemoryLock", "mutating_calls"]


class MemoryJobSink:
    """The job queue's `enqueue` in memory, with its merge rules (for router tests and benchmarks)."""

    def __init__(self, clock: t.Callable[[], datetime.datetime] = lambda: NOW) -> None:
        self.jobs: dict[str, Job] = {}
        self.calls = 0
        self.down = False  # True: every enqueue fails as when MongoDB is unreachable
        self._clock = clock
        self._lock = threading.Lock()

    def enqueue(self, job: Job) -> EnqueueOutcome:
        with self._lock:
            self.calls += 1
            if self.down:
                raise QueueError("MongoDB upsert: ServerSelectionTimeoutError: connection refused")
            existing = self.jobs.get(job.id)
            if existing is None:
                self.jobs[job.id] = job
                return EnqueueOutcome.INSERTED
            changes = report_changes(existing, job, self._clock())
            if not changes:
                return EnqueueOutcome.UNCHANGED
            self.jobs[job.id] = validate_job_document({**existing.to_document(), **changes})
            return EnqueueOutcome.UPDATED
