"""One chaos run: the sandbox, the processes, the schedule applied, the invariants checked, the figures.

    result = ChaosRun(seed=7, knobs=Knobs(duration=60), workdir=path).execute()
    assert result.violations == [], result.report()

The run has three phases. Activity: jobs arrive, faults and kills happen as the schedule
says, the invariants that must hold at every moment are checked about once a second.
Quiet: faults are cleared, the configuration restored, jobs drain (every job must run).
End: the processes stop, two reconciles with `state: absent` run, and nothing of ours
may be left; every log and result is searched for secrets.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import heapq
import json
import pathlib
import secrets
import socket
import subprocess
import threading
import time
import typing as t
import urllib.error
import urllib.parse
import urllib.request

import pymongo
import yaml

from ansible_collections.selfhosted.github_runners.plugins.module_utils._identity import reactive_runner_name
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import claim_is_live
from tests.chaos import invariants
from tests.chaos.processes import KINDS, ProcessKind, Supervisor, python_env, reconcile_command
from tests.chaos.schedule import FAULT_KINDS, Knobs, Step, make_schedule
from tests.sandbox import launcher

CONTROLLER_ID = "chaos"
DATABASE = "github_runners_chaos"
ROUTER_SECRET = "chaos-router-webhook-secret-" + "x" * 8
BOOTSTRAP_TIMEOUT = 8
CLIENT_TIMEOUT = 4  # seconds, GitHub and OpenStack clients of the reconcile
LOCK_TTL = 10  # the shortest the module allows: a killed reconcile blocks its pools this long
CONSUMER_LEASE_TTL = 10  # the shortest the consumer allows: a killed consumer's jobs wait this long
# The reconcile leaves a queued job to the consumers this long: above their spawn time with retries.
JOB_QUEUE_GRACE = 15
BASE_POOLS: t.Tuple[t.Dict[str, t.Any], ...] = (
    {
        "name": "a",
        "labels": ["self-hosted", "linux", "a"],
        "min_idle": 2,
        "max_runners": 8,
        "repository": "octo-org/app",
    },
    {
        "name": "b",
        "labels": ["self-hosted", "linux", "b"],
        "min_idle": 1,
        "max_runners": 5,
        "repository": "octo-org/app",
    },
    {"name": "c", "labels": ["self-hosted", "linux", "c"], "min_idle": 1, "max_runners": 5, "organization": "octo-org"},
)
REMOVABLE = "c"
POOL_COMMON = {
    "flavor": "m1.small",
    "image": "ubuntu-24.04-runner",
    "networks": ["runners-net"],
    "security_groups": ["runners-no-ingress"],
    "bootstrap_timeout": BOOTSTRAP_TIMEOUT,
    "offline_grace": 2,
    "registration_grace": 2,
    "max_lifetime": "1h",
    "creation_backoff": 2,
    "creation_backoff_max": 10,
}
JOB_LABELS = ["self-hosted", "linux"]
SANDBOX_CONFIG = {
    "github.lost_job_timeout": 1.0,
    # The run compresses hours of reconciles into minutes: GitHub's hourly budget is scaled with it
    # (the rate-limit faults still exhaust it on purpose).
    "github.rate_limit": 1_000_000,
}  # every pool takes them, whatever happens to its own label


class Control:
    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, method: str, path: str, body: t.Any = None, timeout: float = 60.0) -> t.Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None


@dataclasses.dataclass
class Result:
    seed: int
    knobs: Knobs
    steps: int
    jobs: int
    jobs_completed: int
    faults: t.Dict[str, int]  # injected, by kind
    fired: t.Dict[str, int]  # times the sandbox's faults of each kind took effect (timed and config ones: not counted)
    kills: t.Dict[str, int]
    process_runs: t.Dict[str, int]
    reactive_spawns: int  # VMs created under a job's runner name (by a consumer)
    activity_seconds: float
    total_seconds: float
    violations: t.List[invariants.Violation]
    applied: t.List[str]

    def figures(self) -> t.Dict[str, t.Any]:
        return {
            "seed": self.seed,
            "activity_seconds": round(self.activity_seconds, 1),
            "total_seconds": round(self.total_seconds, 1),
            "jobs": self.jobs,
            "jobs_completed": self.jobs_completed,
            "faults": dict(sorted(self.faults.items())),
            "fault_total": sum(self.faults.values()),
            "faults_fired": dict(sorted(self.fired.items())),
            "kills": dict(sorted(self.kills.items())),
            "kill_total": sum(self.kills.values()),
            "process_runs": dict(sorted(self.process_runs.items())),
            "reactive_spawns": self.reactive_spawns,
            "violations": len(self.violations),
        }

    def report(self) -> str:
        lines = [f"chaos run, seed {self.seed} (CHAOS_SEED={self.seed} reproduces its schedule)"]
        lines.append(json.dumps(self.figures(), indent=2))
        missing = sorted(set(FAULT_KINDS) - set(self.faults))
        if missing:
            lines.append(f"fault kinds not injected: {', '.join(missing)}")
        for v in self.violations:
            lines.append(f"VIOLATION [{v.invariant}] {v.message}")
            lines.append(
                f"  seed {self.seed}; shortest trace (simulator events about it, then what the run did before):"
            )
            lines.extend(f"    {line}" for line in v.trace)
            # What the run did up to the violation (all of it for the checks at the end): the last few steps.
            before = [a for a in self.applied if v.at == 0.0 or _applied_at(a) <= v.at][-8:]
            lines.extend(f"    run: {a.split('|', 1)[1]}" for a in before)
        return "\n".join(lines)


def _applied_at(line: str) -> float:
    return float(line.split("|", 1)[0])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ChaosRun:
    def __init__(
        self, seed: int, knobs: Knobs, workdir: pathlib.Path, *, echo: t.Callable[[str], None] = print
    ) -> None:
        self.seed = seed
        self.knobs = knobs
        self.workdir = workdir
        self.echo = echo
        self.kinds: t.Dict[str, ProcessKind] = dict(KINDS)
        self.pools: t.Dict[str, t.Dict[str, t.Any]] = {p["name"]: dict(p) for p in BASE_POOLS}
        self.removed: t.Set[str] = set()
        self.max_runners = {p["name"]: int(p["max_runners"]) for p in BASE_POOLS}
        self.password = secrets.token_urlsafe(18)
        self.router_port = free_port()
        self.state_lock = threading.Lock()
        self.violations: t.Dict[t.Tuple[str, str], invariants.Violation] = {}
        self.applied: t.List[str] = []
        self.faults: collections.Counter[str] = collections.Counter()
        self.kills: collections.Counter[str] = collections.Counter()
        self.fault_ids: t.Dict[int, str] = {}  # sandbox fault id -> the schedule's fault kind
        self.fired: collections.Counter[str] = collections.Counter()
        self._current_kind = ""
        self.events: t.List[t.Dict[str, t.Any]] = []
        self.job_names: t.Dict[int, t.List[str]] = {}
        self.start = 0.0
        self.env: t.Dict[str, str] = {}
        self.control: Control
        self.mongodb_uri = ""
        self.mode = "present"
        self.base_quota = 0

    # What the processes are given -------------------------------------------------------
    def process_env(self) -> t.Dict[str, str]:
        """The cloud's clouds.yaml, as the operator's environment gives it; secrets go in argument files only."""
        return {"OS_CLIENT_CONFIG_FILE": self.env["OS_CLIENT_CONFIG_FILE"], "OS_CLOUD": "sandbox"}

    def current_pools(self) -> t.List[t.Dict[str, t.Any]]:
        with self.state_lock:
            return [{**POOL_COMMON, **p} for name, p in self.pools.items() if name not in self.removed]

    def module_args(self) -> t.Dict[str, t.Any]:
        return {
            "controller_id": CONTROLLER_ID,
            "state": self.mode,
            "cloud": "sandbox",
            "github_token": self.env["GITHUB_TOKEN"],
            "github_api_url": self.env["GITHUB_API_URL"],
            "github_timeout": CLIENT_TIMEOUT,
            "api_timeout": CLIENT_TIMEOUT,
            "mongodb_uri": self.mongodb_uri,
            "mongodb_database": DATABASE,
            "lock_ttl": LOCK_TTL,
            "lock_timeout": LOCK_TTL + 5,
            "prune_unlisted_pools": True,
            **self._queue_args(),
            "pools": self.current_pools(),
        }

    def _queue_args(self) -> t.Dict[str, t.Any]:
        """How the reconcile learns of jobs beyond min_idle: the job queue, backfilled for dropped webhooks.

        A pool module without the queue options counts GitHub's queued jobs instead.
        """
        if self.mode != "present":
            return {}
        return {"job_queue": True, "job_queue_backfill": True, "job_queue_grace": JOB_QUEUE_GRACE}

    def router_config(self, replica: int, workdir: pathlib.Path) -> pathlib.Path:
        secret_file = workdir / "webhook-secret"
        uri_file = workdir / "mongodb-uri"
        for path, value in ((secret_file, ROUTER_SECRET), (uri_file, self.mongodb_uri)):
            path.write_text(value + "\n")
            path.chmod(0o600)
        config = {
            "listen": {"host": "127.0.0.1", "port": self.router_port},
            "webhook_secret_files": [str(secret_file)],
            "mongodb": {"uri_file": str(uri_file), "database": DATABASE, "timeout": 3},
            # The router's own view of the pools: the base labels route every job to the first pool.
            "pools": [{"name": p["name"], "labels": JOB_LABELS} for p in BASE_POOLS],
            "log": {"format": "json", "level": "info"},
        }
        path = workdir / "router.yml"
        path.write_text(yaml.safe_dump(config))
        return path

    def consumer_config(self, replica: int, workdir: pathlib.Path) -> pathlib.Path:
        """The consumer's file as its role writes it: the reconciles' pools, database and leases."""
        token_file = workdir / "github-token"
        uri_file = workdir / "mongodb-uri"
        for path, value in ((token_file, self.env["GITHUB_TOKEN"]), (uri_file, self.mongodb_uri)):
            path.write_text(value + "\n")
            path.chmod(0o600)
        config = {
            "controller_id": CONTROLLER_ID,
            "pools": self.current_pools(),  # as the operator's configuration is when the service (re)starts
            "github": {"api_url": self.env["GITHUB_API_URL"], "token_file": str(token_file), "timeout": CLIENT_TIMEOUT},
            "openstack": {"cloud": "sandbox", "api_timeout": CLIENT_TIMEOUT},
            "mongodb": {"uri_file": str(uri_file), "database": DATABASE, "timeout": 3},
            "consumer": {
                "concurrency": 4,
                "poll_interval": 0.1,
                "lease_ttl": CONSUMER_LEASE_TTL,
                "retry_delay": 0.5,
                "retry_delay_max": 2,
                "lock_ttl": LOCK_TTL,
                "lock_timeout": LOCK_TTL + 5,
                "shutdown_timeout": 5,
            },
            "metrics": {"port": 0},
            "log": {"format": "json", "level": "info"},
        }
        path = workdir / "consumer.yml"
        path.write_text(yaml.safe_dump(config))
        return path

    # The run ------------------------------------------------------------------------------
    def execute(self) -> Result:
        began = time.monotonic()
        sandbox_dir = self.workdir / "sandbox"
        proc = launcher.up(sandbox_dir, seed=self.seed)
        try:
            self.env = launcher.read_env(sandbox_dir)
            self.control = Control(self.env["SANDBOX_CONTROL_URL"])
            base = self.env["MONGODB_URI"]
            self.mongodb_uri = base.replace("mongodb://", f"mongodb://chaos:{self.password}@") + "?authMechanism=PLAIN"
            return self._execute(began)
        finally:
            launcher.down(sandbox_dir, proc=proc)

    def _execute(self, began: float) -> Result:
        self.control.call("POST", "/config", SANDBOX_CONFIG)
        self.base_quota = int(self.control.call("GET", "/config")["openstack.quota.instances"])
        self.control.call(
            "POST", "/webhooks", {"url": f"http://127.0.0.1:{self.router_port}/webhook", "secret": ROUTER_SECRET}
        )
        logdir = self.workdir / "processes"
        supervisors = {
            name: Supervisor(kind, self, logdir, self.seed * 1000 + i)
            for i, (name, kind) in enumerate(sorted(self.kinds.items()))
        }
        steps = make_schedule(
            self.seed, self.knobs, {k: kind.replicas for k, kind in self.kinds.items()}, list(self.pools), REMOVABLE
        )
        self.echo(
            f"chaos: seed {self.seed}, {len(steps)} steps over {self.knobs.duration:.0f}s, logs in {self.workdir}"
        )
        for sup in supervisors.values():
            sup.start()
        self._wait_router()
        self.start = time.time()
        stop_checks = threading.Event()
        checker = threading.Thread(target=self._check_loop, args=(stop_checks,), daemon=True)
        checker.start()
        pending: t.List[t.Tuple[float, int, str, t.Callable[[], None]]] = []
        counter = 0
        try:
            for step in steps:
                counter = self._run_due(pending, self.start + step.at)
                self._sleep_until(self.start + step.at)
                self._apply(step, supervisors, pending, counter)
            self._run_due(pending, self.start + self.knobs.duration)
            self._sleep_until(self.start + self.knobs.duration)
            activity = time.time() - self.start
            # Quiet: no faults, every undo done now, the base configuration back.
            for fault in self.control.call("GET", "/faults"):
                self.fired[self.fault_ids.get(int(fault["id"]), fault["kind"])] += int(fault["fired"])
            self.control.call("DELETE", "/faults")
            while pending:
                _at, _n, label, undo = heapq.heappop(pending)
                self._note(f"undo {label} (quiet)")
                undo()
            self.control.call("POST", "/config/reset")
            self.control.call("POST", "/config", SANDBOX_CONFIG)
            with self.state_lock:
                self.pools = {p["name"]: dict(p) for p in BASE_POOLS}
                self.removed.clear()
            self._note("quiet: faults cleared, configuration restored")
            self._drain(timeout=60.0 + self.knobs.duration * 0.5)
            for sup in supervisors.values():
                sup.stop()
            stop_checks.set()
            checker.join(timeout=30)
            state = self.control.call("GET", "/state")
            self._check_continuous(state)
            self._add(invariants.jobs_not_run(state, self.events, self.start))
            self._add(invariants.lost_deliveries(self.events, self._stored_job_ids(), self.start))
            self._teardown()
            self._add(invariants.leftovers(self.control.call("GET", "/state"), CONTROLLER_ID, self._live_leases()))
            self._add(invariants.secrets_exposed(self._texts(logdir), self._secrets()))
            final = self.control.call("GET", "/state")
        finally:
            stop_checks.set()
            for sup in supervisors.values():
                sup.stop(timeout=10)
        jobs = final["github"]["jobs"]
        return Result(
            seed=self.seed,
            knobs=self.knobs,
            steps=len(steps),
            jobs=len(jobs),
            jobs_completed=sum(1 for j in jobs if j["status"] == "completed"),
            faults=dict(self.faults),
            fired=dict(self.fired),
            kills=dict(self.kills),
            process_runs={name: len(sup.records) for name, sup in supervisors.items()},
            reactive_spawns=self._reactive_spawns(final),
            activity_seconds=activity,
            total_seconds=time.monotonic() - began,
            violations=sorted(self.violations.values(), key=lambda v: (v.invariant, v.message)),
            applied=list(self.applied),
        )

    def _sleep_until(self, at: float) -> None:
        delay = at - time.time()
        if delay > 0:
            time.sleep(delay)

    def _run_due(self, pending: t.List[t.Tuple[float, int, str, t.Callable[[], None]]], until: float) -> int:
        while pending and pending[0][0] <= until:
            at, _n, label, undo = heapq.heappop(pending)
            self._sleep_until(at)
            self._note(f"undo {label}")
            undo()
        return len(self.applied)

    def _note(self, line: str) -> None:
        self.applied.append(f"{time.time():.3f}|t+{time.time() - self.start:7.2f}s {line}")

    def _wait_router(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.router_port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the webhook router did not start")

    # Steps ------------------------------------------------------------------------------
    def _apply(self, step: Step, supervisors: t.Mapping[str, Supervisor], pending: t.List[t.Any], n: int) -> None:
        if step.what == "job":
            self.control.call(
                "POST",
                "/jobs",
                {"repository": "octo-org/app", "labels": JOB_LABELS, "duration": step.params["duration"]},
            )
            return
        if step.what == "kill":
            if supervisors[step.kind].kill(int(step.params["replica"])):
                self.kills[step.kind] += 1
                self._note(f"SIGKILL {step.kind}[{step.params['replica']}]")
            return
        self._current_kind = step.kind
        undo = self._inject(step)
        self.faults[step.kind] += 1
        self._note(step.describe())
        if undo is not None:
            heapq.heappush(pending, (self.start + step.at + float(step.params["seconds"]), n, step.kind, undo))

    def _fault(self, **fields: t.Any) -> None:
        added = self.control.call("POST", "/faults", fields)
        self.fault_ids[int(added["id"])] = self._current_kind

    def _inject(self, step: Step) -> t.Optional[t.Callable[[], None]]:
        p, kind = step.params, step.kind
        if kind == "nova_5xx":
            self._fault(
                kind="status",
                service="nova",
                method=p["method"],
                route=p["route"],
                status=p["status"],
                count=p["count"],
            )
        elif kind == "github_5xx":
            self._fault(
                kind="status",
                service="github",
                method=p["method"],
                route=p["route"],
                status=p["status"],
                count=p["count"],
            )
        elif kind == "latency":
            self._fault(kind="latency", service=p["service"], delay=p["delay"], count=p["count"])
        elif kind == "hang":
            self._fault(kind="hang", service=p["service"], hang_seconds=CLIENT_TIMEOUT + 2, count=p["count"])
        elif kind == "reset":
            self._fault(kind="reset", service=p["service"], count=p["count"])
        elif kind == "rate_limit_primary":
            self._fault(kind="github_rate_limit_primary", count=1)
        elif kind == "rate_limit_secondary":
            self._fault(kind="github_rate_limit_secondary", count=1)
        elif kind == "quota_exceeded":
            self._fault(kind="quota_exceeded", count=p["count"])
        elif kind == "vm_error":
            self._fault(kind="server_error", count=p["count"])
        elif kind == "runner_never_online":
            self._fault(kind="runner_never_online", count=p["count"])
        elif kind == "runner_crash_mid_job":
            self._fault(kind="runner_offline_mid_job", count=p["count"])
        elif kind == "webhook_dropped":
            self._fault(kind="webhook_dropped", count=p["count"])
        elif kind == "webhook_duplicated":
            self._fault(kind="webhook_duplicated", count=p["count"])
        elif kind == "quota_squeeze":
            used = int(self.control.call("GET", "/state")["openstack"]["usage"]["instances"])
            self.control.call("POST", "/config", {"openstack.quota.instances": max(1, used)})
            quota = self.base_quota  # not the value now: squeezes overlap
            return lambda: self.control.call("POST", "/config", {"openstack.quota.instances": quota})
        elif kind == "mongodb_restart":
            self.control.call("POST", "/mongodb/kill")
            return lambda: self.control.call("POST", "/mongodb/start")
        elif kind == "pool_scope":
            with self.state_lock:
                pool = self.pools[p["pool"]]
                if "repository" in pool:
                    del pool["repository"]
                    pool["organization"] = "octo-org"
                else:
                    pool.pop("organization", None)
                    pool["repository"] = "octo-org/app"
        elif kind == "pool_labels":
            with self.state_lock:
                pool = self.pools[p["pool"]]
                extra = "chaos-extra"
                pool["labels"] = (
                    [x for x in pool["labels"] if x != extra] if extra in pool["labels"] else [*pool["labels"], extra]
                )
        elif kind == "pool_removed":
            name = p["pool"]
            with self.state_lock:
                self.removed.add(name)

            def back() -> None:
                with self.state_lock:
                    self.removed.discard(name)

            return back
        else:  # pragma: no cover - the schedule only draws known kinds
            raise ValueError(f"unknown fault kind {kind}")
        return None

    # Checks -----------------------------------------------------------------------------
    def _add(self, found: t.Iterable[invariants.Violation]) -> None:
        for v in found:
            key = (v.invariant, v.message)
            if key not in self.violations:
                self.violations[key] = v
                self.echo(f"chaos: VIOLATION [{v.invariant}] {v.message}")

    def _fetch_events(self) -> None:
        fresh = self.control.call("GET", f"/events?since={len(self.events)}")
        self.events.extend(fresh)

    def _check_continuous(self, state: t.Mapping[str, t.Any]) -> None:
        self._fetch_events()
        self._add(invariants.busy_deletions(self.events, self.start))
        self._add(invariants.job_on_two_runners(self.events, self.start))
        self._add(invariants.vms_of_one_name(self.events, self.start, self._jobs_by_name(state)))
        self._add(invariants.sandbox_errors(self.events, self.start))
        self._add(
            invariants.over_max_runners(
                state, CONTROLLER_ID, self.max_runners, BOOTSTRAP_TIMEOUT, time.time(), self.events, self.start
            )
        )

    def _jobs_by_name(self, state: t.Mapping[str, t.Any]) -> t.Dict[str, int]:
        """The runner name a consumer gives each job's runner, in each pool, mapped to the job's id."""
        for job in state["github"]["jobs"]:
            job_id = int(job["id"])
            if job_id not in self.job_names:
                self.job_names[job_id] = [reactive_runner_name(CONTROLLER_ID, p["name"], job_id) for p in BASE_POOLS]
        return {name: job_id for job_id, names in self.job_names.items() for name in names}

    def _check_loop(self, stop: threading.Event) -> None:
        while not stop.wait(1.0):
            try:
                self._check_continuous(self.control.call("GET", "/state"))
            except (OSError, urllib.error.URLError) as exc:
                self.echo(f"chaos: check skipped: {exc}")

    def _reactive_spawns(self, state: t.Mapping[str, t.Any]) -> int:
        names = self._jobs_by_name(state)
        return sum(1 for e in self.events if e["type"] == "server_create" and e["name"] in names)

    def _drain(self, timeout: float) -> None:
        """Wait until no job is queued or running (the processes keep going meanwhile)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            jobs = self.control.call("GET", "/state")["github"]["jobs"]
            if all(j["status"] == "completed" for j in jobs):
                self._note("quiet: every job completed")
                return
            time.sleep(1.0)
        self._note("quiet: drain timed out")

    def _teardown(self) -> None:
        """Two reconciles with state absent, as an operator empties the pools; then the deletes settle."""
        self.mode = "absent"
        workdir = self.workdir / "processes" / "final"
        workdir.mkdir(parents=True, exist_ok=True)
        for number in (1, 2):
            command = reconcile_command(self, 0, workdir)
            with open(workdir / f"run-{number}.out", "wb") as out, open(workdir / f"run-{number}.err", "wb") as err:
                subprocess.run(
                    command, env=python_env(self.process_env()), stdout=out, stderr=err, timeout=300, check=False
                )
            time.sleep(float(POOL_COMMON["registration_grace"]) + 1.0)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            servers = self.control.call("GET", "/state")["openstack"]["servers"]
            if not any(s["name"].startswith(CONTROLLER_ID) and s["status"] != "DELETED" for s in servers):
                break
            time.sleep(0.5)

    def _client(self) -> pymongo.MongoClient[t.Dict[str, t.Any]]:
        return pymongo.MongoClient(self.mongodb_uri, serverSelectionTimeoutMS=10000, tz_aware=True)

    def _stored_job_ids(self) -> t.Set[int]:
        with self._client() as client:
            return {int(d["job_id"]) for d in client[DATABASE]["jobs"].find({}, {"job_id": 1}) if "job_id" in d}

    def _live_leases(self) -> t.List[str]:
        now = datetime.datetime.now(datetime.UTC)
        live = []
        with self._client() as client:
            db = client[DATABASE]
            newest: t.Dict[str, t.Dict[str, t.Any]] = {}
            for doc in db["locks"].find({}):
                key = str(doc.get("key"))
                if key not in newest or int(doc.get("gen", 0)) > int(newest[key].get("gen", 0)):
                    newest[key] = doc
            for key, doc in sorted(newest.items()):
                until = doc.get("lease_until")
                if not doc.get("released") and isinstance(until, datetime.datetime) and until > now:
                    live.append(f"lock {key}")
            live.extend(f"claim {c['_id']}" for c in db["claims"].find({}) if claim_is_live(c, now))
        return live

    def _texts(self, logdir: pathlib.Path) -> t.Dict[str, str]:
        """Every output of every process run (the argument files, inputs, are not outputs)."""
        return {
            str(path.relative_to(self.workdir)): path.read_text(errors="replace")
            for path in sorted(logdir.rglob("*"))
            if path.is_file() and path.suffix in (".out", ".err")
        }

    def _secrets(self) -> t.Dict[str, str]:
        found = {
            "GitHub token": self.env["GITHUB_TOKEN"],
            "webhook secret (router)": ROUTER_SECRET,
            "webhook secret (sandbox)": self.env["GITHUB_WEBHOOK_SECRET"],
            "MongoDB password": self.password,
        }
        pem = pathlib.Path(self.env["GITHUB_APP_PRIVATE_KEY_FILE"]).read_text().splitlines()
        for i, line in enumerate(pem[1:-1][:3]):
            found[f"App private key line {i + 1}"] = line
        for i, jit in enumerate(self.control.call("GET", "/jit-configs")["jit_configs"]):
            found[f"JIT config #{i + 1}"] = jit
        return found
