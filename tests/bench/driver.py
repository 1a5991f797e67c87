"""The benchmark driver behind `make bench`: start the sandbox, run every scenario several times, report.

    python -m tests.bench [--quick] [--runs N] [--only NAME[,NAME]] [--baseline FILE] [--out FILE]

`make bench` runs it with `--out bench/results.json` (and `BASELINE=FILE` for `--baseline`);
`BENCH_QUICK=1` (or `--quick`) is the smoke run: the small variants, one run each. It prints
the table of figures (median of the runs, spread = max - min, target), writes the results
document (schema in tests/bench/results.py), a latency plot beside it, and, with a baseline,
the change of every figure.

A scenario is a `Scenario`: a function taking the `Bench` (the sandbox, its MongoDB, real Nova
on demand, quick or not) that returns a `Measurement` of one run. Each module named in
`SCENARIO_MODULES` lists its scenarios in `SCENARIOS`. A benchmark that already returns
{name: number} plugs in through `figures_from`: a module tests/bench/reactive.py with::

    def consumers(bench: Bench) -> Measurement:
        from tests.sandbox import bench_consumer
        return figures_from("reactive", bench_consumer.run(bench.mongodb_uri, quick=bench.quick))

    SCENARIOS = [Scenario("reactive", "job inserted -> create-server request", consumers)]

and "reactive" added to `SCENARIO_MODULES`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib
import importlib.metadata
import json
import os
import pathlib
import platform
import signal
import subprocess
import sys
import tempfile
import time
import typing as t

import yaml

from tests.bench.results import Measurement, check_schema, compare, comparison_table, summarize, table
from tests.integration.conftest import Control
from tests.sandbox import launcher
from tests.sandbox.mongo import FERRETDB_VERSION

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "bench" / "results.json"
#: The sandbox's limits that the scenes of the benchmark would otherwise run into (they are not measured).
BENCH_CONFIG = {
    "openstack.quota.instances": -1,
    "openstack.quota.cores": -1,
    "openstack.quota.ram": -1,
    "github.rate_limit": 10**7,
}
PACKAGES = ("ansible-core", "openstacksdk", "PyGithub", "pymongo", "aiohttp", "matplotlib")


@dataclasses.dataclass
class Bench:
    """What a scenario runs against; real Nova is started on first use and stopped at the end."""

    workdir: pathlib.Path
    env: dict[str, str]
    control: Control
    quick: bool
    _nova: t.Any = None

    @property
    def mongodb_uri(self) -> str:
        return self.env["MONGODB_URI"]

    def reset(self) -> None:
        """No faults, default tunables (but no quota or rate limit in the way) and fresh counters."""
        self.control.delete("/faults")
        self.control.post("/config/reset")
        self.control.post("/config", BENCH_CONFIG)
        self.control.post("/counters/reset")

    def counters(self) -> list[dict[str, t.Any]]:
        return t.cast(list[dict[str, t.Any]], self.control.get("/counters"))

    def real_nova(self) -> t.Any:
        """Unmodified Nova (fake driver), with the sandbox's runner agents on its servers."""
        if self._nova is None:
            from tests.sandbox import realnova

            nova = realnova.start(self.workdir / "realnova")
            self.control.post("/clouds", {"name": "realnova", "auth": nova.auth(admin=True), "interval": 0.2})
            self._nova = nova
        return self._nova

    def close(self) -> None:
        if self._nova is not None:
            self._nova.stop()
            self._nova = None


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    run: t.Callable[[Bench], Measurement]
    runs: int = 3  # a full run's repetitions (a quick run makes one)
    parameters: dict[str, t.Any] = dataclasses.field(default_factory=dict)
    quick: bool = False  # part of the quick (smoke) run
    prepare: t.Callable[[Bench], None] | None = None  # sets the scene once, before the runs
    finish: t.Callable[[Bench], None] | None = None  # cleans up after the runs


#: The modules of tests/bench that hold scenarios, in the order they run.
SCENARIO_MODULES = ("reconcile", "router", "reactive", "playbook")


def scenarios() -> list[Scenario]:
    found: list[Scenario] = []
    for name in SCENARIO_MODULES:
        found.extend(importlib.import_module(f"tests.bench.{name}").SCENARIOS)
    return found


def machine() -> dict[str, t.Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    memory = next(
        (int(line.split()[1]) // 1024 for line in _read("/proc/meminfo").splitlines() if line.startswith("MemTotal:")),
        0,
    )
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_mib": memory,
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def versions() -> dict[str, str]:
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    found = {"collection": str(galaxy["version"]), "commit": _git("rev-parse", "--short", "HEAD")}
    for package in PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    from tests.sandbox.realnova import NOVA_VERSION

    found["ferretdb"] = FERRETDB_VERSION.lstrip("v")
    found["nova"] = NOVA_VERSION
    return found


def _read(path: str) -> str:
    try:
        return pathlib.Path(path).read_text()
    except OSError:
        return ""


def _git(*args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return proc.stdout.strip() or "unknown"


def run_scenario(
    bench: Bench, scenario: Scenario, count: int, into: list[Measurement], progress: t.Callable[[str], None]
) -> None:
    bench.reset()
    if scenario.prepare is not None:
        scenario.prepare(bench)
    try:
        for number in range(1, count + 1):
            bench.reset()
            begun = time.monotonic()
            into.append(scenario.run(bench))
            progress(f"bench: {scenario.name} run {number}/{count} ({time.monotonic() - begun:.1f} s)")
    finally:
        if scenario.finish is not None:
            bench.reset()
            scenario.finish(bench)


def run(
    scenarios: t.Sequence[Scenario],
    *,
    quick: bool,
    runs: int | None = None,
    progress: t.Callable[[str], None] = print,
) -> dict[str, t.Any]:
    """Every scenario `runs` times (its own count by default, one when quick) on one sandbox; the results document."""
    started = time.monotonic()
    created = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    header = {"created": created, "quick": quick, "runs": runs, "machine": machine(), "versions": versions()}
    measured: dict[str, list[Measurement]] = {}
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="ghr-bench-") as tmp:
        workdir = pathlib.Path(tmp)
        process = launcher.up(workdir / "sandbox")
        bench: Bench | None = None
        try:
            env = launcher.read_env(workdir / "sandbox")
            os.environ["OS_CLIENT_CONFIG_FILE"] = env["OS_CLIENT_CONFIG_FILE"]
            bench = Bench(workdir, env, Control(env["SANDBOX_CONTROL_URL"], timeout=60), quick)
            for scenario in scenarios:
                count = runs or (1 if quick else scenario.runs)
                measured[scenario.name] = []
                progress(f"bench: {scenario.name}: {scenario.description}")
                try:
                    run_scenario(bench, scenario, count, measured[scenario.name], progress)
                except Exception as exc:  # the other scenarios still run; the results name what failed
                    errors[scenario.name] = f"{type(exc).__name__}: {exc}"
                    progress(f"bench: {scenario.name} failed: {errors[scenario.name]}")
        finally:
            if bench is not None:
                bench.close()
            launcher.down(workdir / "sandbox", proc=process)
    info = {
        s.name: {
            "description": s.description,
            "runs": len(measured.get(s.name, [])),
            "parameters": s.parameters,
            "error": errors.get(s.name),
        }
        for s in scenarios
    }
    document = summarize(info, measured, header)
    document["duration_s"] = round(time.monotonic() - started, 1)
    return document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK", "") not in ("", "0"))
    parser.add_argument("--runs", type=int, help="repetitions of every scenario (default: each scenario's own)")
    parser.add_argument("--only", help="comma-separated scenario names")
    parser.add_argument("--baseline", type=pathlib.Path, help="a former results file to compare with")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    # Stopped, it still stops the sandbox (and Nova) it started.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    baseline = None
    if args.baseline is not None:
        baseline = json.loads(args.baseline.read_text())
        problems = check_schema(baseline)
        if problems:
            print(f"bench: {args.baseline} is not a results file: {'; '.join(problems)}", file=sys.stderr)
            return 2
    chosen = scenarios()
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {s.name for s in chosen}
        if unknown:
            print(
                f"bench: no scenario {', '.join(sorted(unknown))}; there are {', '.join(s.name for s in chosen)}",
                file=sys.stderr,
            )
            return 2
        chosen = [s for s in chosen if s.name in wanted]
    elif args.quick:
        chosen = [s for s in chosen if s.quick]
    document = run(chosen, quick=args.quick, runs=args.runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(table(document))
    for scenario, info in document["scenarios"].items():
        for note in info["notes"]:
            print(f"note ({scenario}): {note}")
    failed = {name: info["error"] for name, info in document["scenarios"].items() if info["error"]}
    for scenario, error in failed.items():
        print(f"bench: scenario {scenario} failed: {error}")
    missed = [name for name, f in document["figures"].items() if f["holds"] is False]
    print(
        f"bench: {len(document['figures'])} figures, {len(missed)} targets missed, {document['duration_s']} s; {args.out}"
    )
    try:
        from tests.bench.plot import plot_latencies

        print(f"bench: plot {plot_latencies(document, args.out.parent / 'plots')}")
    except ImportError as exc:  # the results stand without the plot
        print(f"bench: no plot ({exc})")
    if baseline is not None:
        print(f"\nchange against {args.baseline} ({baseline['created']}):")
        print(comparison_table(compare(baseline, document)))
    return 1 if failed else 0
