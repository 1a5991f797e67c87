"""Reconcile scenarios: the API calls of a steady-state reconcile, a scale-up under API latency, one job's life.

The core is driven in process with the real clients, as the `github_runner_pool` module drives it
(the playbook scenario measures the module through ansible-playbook). Calls are counted twice:
by the clients (the report's `api_calls`) and by the servers (the sandbox's and Nova's counters,
which say which route each call took).
"""

from __future__ import annotations

import contextlib
import functools
import math
import pathlib
import threading
import time
import typing as t

import yaml

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import DEFAULT_CONCURRENCY, parse_pool
from ansible_collections.selfhosted.github_runners.plugins.module_utils._github import GithubAuth, GithubClient
from ansible_collections.selfhosted.github_runners.plugins.module_utils._lock import FileLock
from ansible_collections.selfhosted.github_runners.plugins.module_utils._openstack import CloudClient, CloudOptions
from ansible_collections.selfhosted.github_runners.plugins.module_utils._ratelimit import TokenBucket
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reconcile import ReconcileOptions, Reconciler
from ansible_collections.selfhosted.github_runners.plugins.module_utils._report import ReconcileReport
from tests.bench.driver import Bench, Scenario
from tests.bench.results import Measurement, Target

CONTROLLER = "bench"
RUNNERS_PAGE = 100  # GitHub's largest per_page, which the collection asks for
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
AUTH_ROUTES = ("/v3/auth/tokens", "/identity/v3/auth/tokens", "/app/installations/{installation_id}/access_tokens")
JIT_ROUTE = "/repos/{owner}/{repo}/actions/runners/generate-jitconfig"
RUNNERS_ROUTE = "/repos/{owner}/{repo}/actions/runners"
CREATE_LATENCY, GITHUB_LATENCY, SCALE_UP = 0.3, 0.05, 100
WIDER = 8  # a create_concurrency at which 300 ms creates keep up with 50 ms JIT requests
#: An unpaced bucket for setting the scene (registering 1,000 runners), not for what is measured.
UNPACED = TokenBucket(10**6, 10**8)


class Timeline:
    """Intervals (monotonic start, end) of kinds of work, from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.spans: dict[str, list[tuple[float, float]]] = {}

    @contextlib.contextmanager
    def span(self, kind: str) -> t.Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            with self._lock:
                self.spans.setdefault(kind, []).append((started, time.monotonic()))

    def busy(self, *kinds: str) -> float:
        """Seconds during which at least one span of `kinds` was open."""
        spans = sorted(s for kind in kinds for s in self.spans.get(kind, []))
        total, end = 0.0, -math.inf
        for start, stop in spans:
            if stop > end:
                total += stop - max(start, end)
                end = stop
        return total


def github(bench: Bench, bucket: TokenBucket | None = None, timeline: Timeline | None = None) -> GithubClient:
    """The collection's GitHub client; with a timeline, its requests and its bucket waits are recorded."""

    def sleep(seconds: float) -> None:
        with timeline.span("bucket") if timeline is not None else contextlib.nullcontext():
            time.sleep(seconds)

    client = GithubClient(
        GithubAuth(token=bench.env["GITHUB_TOKEN"]),
        api_url=bench.env["GITHUB_API_URL"],
        timeout=30,
        write_bucket=bucket,
        sleep=sleep,
    )
    if timeline is not None:
        requester = client.transport._requester
        send = requester.requestJsonAndCheck

        def timed(*args: t.Any, **kwargs: t.Any) -> t.Any:
            with timeline.span("github"):
                return send(*args, **kwargs)

        requester.requestJsonAndCheck = timed
    return client


def reconcile(
    bench: Bench,
    pools: t.Sequence[dict[str, t.Any]],
    *,
    cloud: str = "sandbox",
    bucket: TokenBucket | None = None,
    timeline: Timeline | None = None,
    **options: t.Any,
) -> tuple[ReconcileReport, float]:
    """One reconcile with new clients (as each ansible-playbook run has): its report and wall time."""
    locks = bench.workdir / "locks"
    locks.mkdir(exist_ok=True)
    started = time.monotonic()
    reconciler = Reconciler(
        github(bench, bucket, timeline),
        CloudClient.connect(CloudOptions(cloud=cloud, api_timeout=60)),
        lambda key: FileLock(str(locks / f"{key}.lock"), timeout=60),
    )
    report = reconciler.run([parse_pool(p) for p in pools], ReconcileOptions(CONTROLLER, **options))
    elapsed = time.monotonic() - started
    reconciler.cloud.close()
    if report.errors:
        raise RuntimeError(f"reconcile of {[p['name'] for p in pools]} failed: {report.errors}")
    return report, elapsed


# Backends -------------------------------------------------------------------------------------
class Backend(t.Protocol):
    name: str
    cloud: str
    max_limit: int

    def pool(self, name: str, size: int) -> dict[str, t.Any]: ...
    def counters(self) -> list[dict[str, t.Any]]: ...
    def reset_counters(self) -> None: ...


def base_pool(bench: Bench, name: str, size: int, **cloud: t.Any) -> dict[str, t.Any]:
    return {
        "name": name,
        "repository": bench.env["GITHUB_REPOSITORY"],
        "labels": ["self-hosted", "linux", name],
        "min_idle": size,
        "max_runners": max(1, size),
        "create_concurrency": 16,
        # The default (20) spreads a scale-up over several runs; a pool sized for a burst sets it.
        "max_create_per_run": max(1, size),
        # Long enough that nothing of the steady state looks failed or lost on a loaded machine.
        "bootstrap_timeout": 900,
        "offline_grace": 300,
        "registration_grace": 5,
        "max_lifetime": "24h",
        **cloud,
    }


class SandboxCloud:
    name, cloud, max_limit = "sandbox", "sandbox", 1000

    def __init__(self, bench: Bench) -> None:
        self.bench = bench

    def pool(self, name: str, size: int) -> dict[str, t.Any]:
        cloud = {"flavor": "m1.small", "image": "ubuntu-24.04-runner", "networks": ["runners-net"]}
        return base_pool(self.bench, name, size, security_groups=["runners-no-ingress"], **cloud)

    def counters(self) -> list[dict[str, t.Any]]:
        return self.bench.counters()

    def reset_counters(self) -> None:
        self.bench.control.post("/counters/reset")


class NovaCloud:
    """Unmodified Nova; GitHub stays the sandbox's (whose runner agents start from the servers' user data)."""

    name, cloud, max_limit = "nova", "realnova", 1000  # Nova's [api] max_limit default

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.nova = bench.real_nova()
        clouds = pathlib.Path(bench.env["OS_CLIENT_CONFIG_FILE"])
        merged = yaml.safe_load(clouds.read_text())
        if self.cloud not in merged["clouds"]:
            merged["clouds"].update(yaml.safe_load(self.nova.clouds_yaml.read_text())["clouds"])
            clouds.write_text(yaml.safe_dump(merged))
        from tests.sandbox.realnova.client import NovaClient

        admin = NovaClient(self.nova.auth(admin=True))
        admin.login()
        # Nova's default of 10 instances (40 in the lane) would stop the scene at 40; the fake host fits 1,500 tiny ones.
        admin.request("PUT", f"/os-quota-sets/{admin.project_id}", {"quota_set": {"instances": -1, "force": True}})

    def pool(self, name: str, size: int) -> dict[str, t.Any]:
        info = self.nova.info
        return base_pool(
            self.bench, name, size, flavor="m1.tiny", image=info["image_id"], networks=[info["network_id"]]
        )

    def counters(self) -> list[dict[str, t.Any]]:
        github = [c for c in self.bench.counters() if c["service"] == "github"]
        return github + t.cast(list[dict[str, t.Any]], self.nova.control("GET", "/counters"))

    def reset_counters(self) -> None:
        self.bench.control.post("/counters/reset")
        self.nova.control("POST", "/counters/reset")


def calls(counters: t.Iterable[t.Mapping[str, t.Any]], service: str | None = None, **match: t.Any) -> int:
    return sum(
        c["count"]
        for c in counters
        if service in (None, c["service"]) and all(c[key] == value for key, value in match.items())
    )


def mutating(counters: t.Iterable[t.Mapping[str, t.Any]], cloud: bool) -> int:
    """Calls that create or delete something (authentication excluded), on the cloud or on GitHub."""
    return sum(
        c["count"]
        for c in counters
        if (c["service"] != "github") == cloud
        and c["method"] in MUTATING
        and not any(c["route"].endswith(route) for route in AUTH_ROUTES)
    )


def auth_calls(counters: t.Iterable[t.Mapping[str, t.Any]]) -> int:
    return sum(c["count"] for c in counters if c["method"] == "POST" and c["route"].endswith("/auth/tokens"))


def wait_for(what: str, predicate: t.Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def idle_runners(bench: Bench, pool: str) -> int:
    runners = bench.control.get("/state")["github"]["runners"]
    prefix = f"{CONTROLLER}-{pool}-"
    return sum(1 for r in runners if r["name"].startswith(prefix) and r["status"] == "online" and not r["busy"])


def clear(bench: Bench, backend: Backend, *names: str) -> None:
    """Delete the runners of the pools `names` (paced by nothing: setting the scene is not measured)."""
    pools = [backend.pool(name, 0) for name in names]
    reconcile(bench, pools, cloud=backend.cloud, bucket=UNPACED, mode="absent")


# 1. Steady state ------------------------------------------------------------------------------
STEADY_POOL = "steady"


def grow(bench: Bench, backend: Backend, size: int, timeout: float) -> None:
    """The steady pool at `size` runners; on the sandbox booted and idle.

    Nova's fake driver builds a few servers a minute on this machine: there the runners are
    still booting (kept, as the state table says), which costs a reconcile the same listings.
    """
    bench.control.post("/config", {"openstack.boot_delay": 0.05, "openstack.compute_concurrency": 64})
    reconcile(bench, [backend.pool(STEADY_POOL, size)], cloud=backend.cloud, bucket=UNPACED)
    if backend.name == "sandbox":
        wait_for(f"{size} idle runners", lambda: idle_runners(bench, STEADY_POOL) >= size, timeout)


def steady(backend_type: type[SandboxCloud] | type[NovaCloud], size: int) -> Scenario:
    name = f"steady_{backend_type.name}_{size}"

    def prepare(bench: Bench) -> None:
        backend = backend_type(bench)
        grow(bench, backend, size, timeout=max(120, size * 0.6))
        reconcile(bench, [backend.pool(STEADY_POOL, size)], cloud=backend.cloud)  # settle: a first no-change run

    def run(bench: Bench) -> Measurement:
        backend = backend_type(bench)
        backend.reset_counters()
        timeline = Timeline()
        report, elapsed = reconcile(bench, [backend.pool(STEADY_POOL, size)], cloud=backend.cloud, timeline=timeline)
        counted = backend.counters()
        prefix = f"reconcile.{backend.name}.n{size}"
        pages = math.ceil(size / RUNNERS_PAGE)
        server_pages = max(1, math.ceil(size / backend.max_limit))
        m = Measurement()
        m.add(f"{prefix}.github_calls", report.api_calls["github"], "calls", Target("<=", pages))
        m.add(f"{prefix}.github_runner_pages", calls(counted, "github", method="GET", route=RUNNERS_ROUTE), "calls")
        m.add(f"{prefix}.openstack_calls", report.api_calls["openstack"], "calls", Target("<=", server_pages + 1))
        m.add(f"{prefix}.openstack_auth_calls", auth_calls(c for c in counted if c["service"] != "github"), "calls")
        servers = sum(c["count"] for c in counted if c["service"] != "github" and c["route"] == "/servers/detail")
        m.add(f"{prefix}.openstack_server_pages", servers, "calls")
        m.add(f"{prefix}.mutating_calls", mutating(counted, True) + mutating(counted, False), "calls", Target("==", 0))
        m.add(f"{prefix}.openstack_list_bytes", report.api_calls["openstack_list_bytes"], "bytes")
        m.add(f"{prefix}.openstack_list_bytes_per_runner", report.api_calls["openstack_list_bytes"] / size, "bytes")
        m.add(f"{prefix}.wall", elapsed, "s")
        m.add(f"{prefix}.github_request_time", timeline.busy("github"), "s")
        if report.changed:
            m.notes.append(f"a steady-state reconcile of {size} runners changed something: {report.as_dict()['pools']}")
        return m

    def finish(bench: Bench) -> None:
        clear(bench, backend_type(bench), STEADY_POOL)

    description = f"steady-state reconcile of {size} idle runners ({backend_type.name})"
    quick = backend_type is SandboxCloud and size == 10
    return Scenario(name, description, run, prepare=prepare, finish=finish, quick=quick, parameters={"runners": size})


# 2. Scale-up under latency, and one job's life -------------------------------------------------
SCALE_POOL = "scale"


def scale_up(bench: Bench, concurrency: int = DEFAULT_CONCURRENCY) -> Measurement:
    """100 runners from none, each create 300 ms, each GitHub request 50 ms, GitHub's write pacing (80, 80/min)."""
    backend = SandboxCloud(bench)
    size = 10 if bench.quick else SCALE_UP
    faults = [
        {"kind": "latency", "service": "nova", "method": "POST", "route": "/servers", "delay": CREATE_LATENCY},
        {"kind": "latency", "service": "github", "delay": GITHUB_LATENCY},
    ]
    for fault in faults:
        bench.control.post("/faults", {**fault, "count": None})
    backend.reset_counters()
    timeline = Timeline()
    pool = {**backend.pool(SCALE_POOL, size), "create_concurrency": concurrency}
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(clear, bench, backend, SCALE_POOL)
        cleanup.callback(bench.control.delete, "/faults")
        report, elapsed = reconcile(bench, [pool], timeline=timeline)
        counted = backend.counters()
    created = len(report.pools[0].execution.created)
    github_busy = timeline.busy("github")
    bucket_wall = timeline.busy("bucket")
    github_side = timeline.busy("github", "bucket")
    bound = size * GITHUB_LATENCY + bucket_wall
    prefix = f"scale_up.n{size}" + ("" if concurrency == DEFAULT_CONCURRENCY else f".concurrency{concurrency}")
    m = Measurement()
    m.add(f"{prefix}.created", created, "count", Target("==", size))
    m.add(f"{prefix}.wall", elapsed, "s")
    m.add(f"{prefix}.github_calls", report.api_calls["github"], "calls")
    m.add(
        f"{prefix}.github_jit_calls",
        calls(counted, "github", method="POST", route=JIT_ROUTE),
        "calls",
        Target("==", size),
    )
    m.add(f"{prefix}.openstack_calls", report.api_calls["openstack"], "calls")
    m.add(
        f"{prefix}.openstack_creates",
        calls(counted, "nova", method="POST", route="/servers"),
        "calls",
        Target("==", size),
    )
    m.add(f"{prefix}.bucket_wait_reported", report.github_rate.write_wait, "s")
    m.add(f"{prefix}.bucket_wait_wall", bucket_wall, "s")
    m.add(f"{prefix}.github_request_time", github_busy, "s")
    m.add(f"{prefix}.github_bound", bound, "s")
    m.add(f"{prefix}.distance_from_github_bound", elapsed - bound, "s")
    # What the cloud side adds: time in which GitHub was neither answering nor the bucket waiting.
    openstack_share = elapsed - github_side
    m.add(f"{prefix}.openstack_share", openstack_share, "s")
    m.add(f"{prefix}.openstack_share_in_creates", openstack_share / CREATE_LATENCY, "ratio", Target("<=", 15))
    return m


JOB_POOL = "job"


def job_lifecycle(bench: Bench) -> Measurement:
    """A queued job: one reconcile creates its runner, the job runs, the next reconciles delete what is left."""
    backend = SandboxCloud(bench)
    pool = {**backend.pool(JOB_POOL, 0), "max_runners": 1}
    backend.reset_counters()
    bench.control.post("/jobs", {"repository": bench.env["GITHUB_REPOSITORY"], "labels": pool["labels"]})
    runs = 0
    created, deleted = 0, 0
    deadline = time.monotonic() + 60
    # Until the job's runner came and went: its VM is deleted and nothing of the pool is left.
    while deleted < 1 or bench.control.get("/state")["openstack"]["servers"]:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the job's runner did not come and go in 60 s ({runs} reconciles)")
        report, _elapsed = reconcile(bench, [pool], count_queued_jobs=True)
        runs += 1
        created += len(report.pools[0].execution.created)
        deleted += sum(len(names) for names in report.pools[0].execution.deleted.values())
        time.sleep(1.0)
    counted = backend.counters()
    m = Measurement()
    m.add("job_lifecycle.github_mutating_calls", mutating(counted, cloud=False), "calls", Target("==", 1))
    m.add("job_lifecycle.github_jit_calls", calls(counted, "github", method="POST", route=JIT_ROUTE), "calls")
    m.add("job_lifecycle.openstack_mutating_calls", mutating(counted, cloud=True), "calls", Target("==", 2))
    m.add("job_lifecycle.reconciles", runs, "count")
    m.add("job_lifecycle.github_calls_per_reconcile", calls(counted, "github") / runs, "calls")
    m.add(
        "job_lifecycle.openstack_calls_per_reconcile", calls(counted) / runs - calls(counted, "github") / runs, "calls"
    )
    return m


def _scenarios() -> list[Scenario]:
    sizes = (10, 100, 1000)
    found = [steady(SandboxCloud, size) for size in sizes]
    found += [steady(NovaCloud, size) for size in NOVA_SIZES]
    scaling = "scale-up of 100 runners (10 when quick): 300 ms per create, 50 ms per GitHub request, default pacing"
    found.append(Scenario("scale_up", scaling, scale_up, quick=True, parameters={"runners": SCALE_UP}))
    wider = f"the same scale-up with create_concurrency {WIDER}: creates no longer hold back the JIT requests"
    found.append(
        Scenario(
            f"scale_up_concurrency{WIDER}",
            wider,
            functools.partial(scale_up, concurrency=WIDER),
            parameters={"runners": SCALE_UP, "create_concurrency": WIDER},
        )
    )
    lifecycle = "the calls of one job's runner, from queued job to deleted VM"
    found.append(Scenario("job_lifecycle", lifecycle, job_lifecycle, quick=True))
    return found


#: Real Nova's fake driver boots slowly here; see docs/performance.md for what 1,000 would take.
NOVA_SIZES = (10, 100)
SCENARIOS = _scenarios()
