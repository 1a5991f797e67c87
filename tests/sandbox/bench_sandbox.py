"""Benchmark of the sandbox (not a test): start-up time, and 1,000 servers through openstacksdk.

    python -m tests.sandbox.bench_sandbox [--servers 1000] [--workers 16] [--json FILE]

Measures `up` (until the control API answers, MongoDB included), creating N servers
concurrently through openstacksdk, the time until all are ACTIVE on the simulated compute
host, listing them (all, and filtered by tags on the server side), and deleting them.

The GitHub side plugs in by providing `tests/sandbox/github/bench.py` with
`run(ctx: BenchContext) -> dict[str, float]` (e.g. registering and listing 1,000 runners);
its numbers are reported with these.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import dataclasses
import importlib
import json
import os
import pathlib
import secrets
import statistics
import sys
import tempfile
import threading
import time
import typing as t
import urllib.request

if __package__ in (None, ""):  # run as a file: tests/sandbox must not shadow the openstack SDK
    sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != pathlib.Path(__file__).parent]
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
# The collection's core, as `make venv` links it for imports.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / ".venv" / "collections"))

import openstack

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import parse_pool
from ansible_collections.selfhosted.github_runners.plugins.module_utils._openstack import CloudClient, CloudOptions
from ansible_collections.selfhosted.github_runners.plugins.module_utils._userdata import render_user_data
from tests.sandbox import launcher


@dataclasses.dataclass
class BenchContext:
    workdir: pathlib.Path
    env: dict[str, str]
    servers: int
    workers: int
    config: dict[str, t.Any] = dataclasses.field(default_factory=dict)  # sandbox tunables for the run

    def control(self, method: str, path: str, body: t.Any = None) -> t.Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.env["SANDBOX_CONTROL_URL"] + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None


def timed(fn: t.Callable[[], t.Any]) -> tuple[float, t.Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def rss_mib(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def bench_openstack(ctx: BenchContext, pid: int) -> dict[str, float]:
    results: dict[str, float] = {}
    unlimited = {"openstack.quota.instances": -1, "openstack.quota.cores": -1, "openstack.quota.ram": -1}
    ctx.control("POST", "/config", {**unlimited, **ctx.config})
    local = threading.local()

    def conn() -> openstack.connection.Connection:
        if not hasattr(local, "conn"):
            local.conn = openstack.connect(cloud=ctx.env["OS_CLOUD"])
        return t.cast(openstack.connection.Connection, local.conn)

    main = conn()
    image = main.image.find_image("ubuntu-24.04-runner", ignore_missing=False).id
    flavor = main.compute.find_flavor("m1.small", ignore_missing=False).id
    network = main.network.find_network("runners-net", ignore_missing=False).id
    pools = max(1, ctx.servers // 10)
    # What the collection boots: its cloud-init script around a JIT config of GitHub's size (~2.5 kB).
    spec = parse_pool({"name": "bench", "repository": "octo-org/app", "labels": ["self-hosted"], "flavor": "m1.small",
                       "image": "ubuntu-24.04-runner", "networks": ["runners-net"]})  # fmt: skip
    script = render_user_data(spec, base64.b64encode(secrets.token_bytes(1900)).decode())
    user_data = base64.b64encode(script.encode()).decode()

    def create(i: int) -> str:
        server = conn().compute.create_server(
            name=f"bench-p{i % pools}-{i:05d}",
            imageRef=image,
            flavorRef=flavor,
            networks=[{"uuid": network}],
            tags=["ghr-controller=bench", f"ghr-pool=p{i % pools}"],
            metadata={"ghr_runner_id": str(i), "ghr_created_at": "2025-01-01T00:00:00Z"},
            user_data=user_data,  # a JIT config no runner agent can use: the VM stays ACTIVE
        )
        return str(server.id)

    with concurrent.futures.ThreadPoolExecutor(ctx.workers) as pool:
        list(pool.map(lambda _worker: conn().compute.get("/flavors"), range(ctx.workers)))  # authenticate every worker
        started = time.perf_counter()
        elapsed, ids = timed(lambda: list(pool.map(create, range(ctx.servers))))
        results["create_total_s"] = elapsed
        results["create_per_s"] = ctx.servers / elapsed

        def all_active() -> bool:
            states = ctx.control("GET", "/state")["openstack"]["servers"]
            # SHUTOFF: booted, and its runner agent gave up on the made-up JIT config and powered it off.
            return sum(1 for s in states if s["status"] in ("ACTIVE", "SHUTOFF")) >= ctx.servers

        while not all_active():
            time.sleep(0.25)
        results["all_active_after_s"] = time.perf_counter() - started

        # The simulator's share: one HTTP call answering all servers, without openstacksdk building objects.
        raw = [
            timed(lambda: main.compute.get("/servers/detail", params={"tags": "ghr-controller=bench"}).json())[0]
            for _attempt in range(5)
        ]
        results["list_all_detail_http_only_s_median"] = statistics.median(raw)
        lists = [timed(lambda: list(main.compute.servers(tags="ghr-controller=bench")))[0] for _attempt in range(5)]
        results["list_all_detail_s_median"] = statistics.median(lists)
        filtered = [
            timed(lambda: list(main.compute.servers(tags="ghr-controller=bench,ghr-pool=p1")))[0]
            for _attempt in range(5)
        ]
        results["list_one_pool_s_median"] = statistics.median(filtered)
        page, count = timed(lambda: len(main.list_servers(filters={"tags": "ghr-controller=bench"})))
        results["cloud_layer_list_s"] = page
        results["listed"] = count
        results["rss_mib_with_servers"] = rss_mib(pid)
        # What a reconcile reports as api_calls.openstack_list_bytes, per server, as a member and as an admin
        # (whose listing carries every server's user data).
        for who, cloud in (("member", ctx.env["OS_CLOUD"]), ("admin", "sandbox-admin")):
            client = CloudClient.connect(CloudOptions(cloud=cloud))
            client.list_servers("bench")
            results[f"list_bytes_per_server_{who}"] = client.list_bytes / ctx.servers
            client.close()

        started = time.perf_counter()
        results["delete_total_s"] = timed(lambda: list(pool.map(conn().compute.delete_server, ids)))[0]
        while ctx.control("GET", "/state")["openstack"]["servers"]:
            time.sleep(0.25)
        results["all_gone_after_s"] = time.perf_counter() - started
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=16, help="concurrent openstacksdk clients")
    parser.add_argument("--boot-delay", type=float, help="openstack.boot_delay (default: the sandbox's)")
    parser.add_argument(
        "--compute-concurrency", type=int, help="openstack.compute_concurrency (default: the sandbox's)"
    )
    parser.add_argument("--json", type=pathlib.Path, help="also write the numbers here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as tmp:
        workdir = pathlib.Path(tmp)
        up_s, proc = timed(lambda: launcher.up(workdir))
        assert proc is not None
        try:
            env = launcher.read_env(workdir)
            os.environ["OS_CLIENT_CONFIG_FILE"] = env["OS_CLIENT_CONFIG_FILE"]
            config = {
                "openstack.boot_delay": args.boot_delay,
                "openstack.compute_concurrency": args.compute_concurrency,
            }
            ctx = BenchContext(
                workdir, env, args.servers, args.workers, {k: v for k, v in config.items() if v is not None}
            )
            results: dict[str, float] = {"up_s": up_s, "rss_mib_idle": rss_mib(proc.pid)}
            results.update(bench_openstack(ctx, proc.pid))
            try:
                github_bench = importlib.import_module("tests.sandbox.github.bench")
            except ModuleNotFoundError:
                github_bench = None
            if github_bench is not None:
                results.update({f"github_{k}": v for k, v in github_bench.run(ctx).items()})
        finally:
            down_s = timed(lambda: launcher.down(workdir, proc=proc))[0]
        results["down_s"] = down_s

    print(
        f"sandbox benchmark: {args.servers} servers, {args.workers} concurrent clients, {ctx.config or 'default tunables'}"
    )
    for key, value in results.items():
        print(f"  {key:32} {value:10.3f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
