"""`make bench` in quick mode: the driver runs every quick scenario, writes its results and compares two runs.

Only call counts and the document's shape are checked: the benchmark's times are not a test's business.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from tests.bench.results import check_schema

pytestmark = pytest.mark.sandbox
ROOT = pathlib.Path(__file__).resolve().parents[3]


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / ".venv" / "collections"), str(ROOT)])}
    env.pop("BENCH_QUICK", None)
    return subprocess.run(
        [sys.executable, "-m", "tests.bench", "--quick", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=420, check=False,
    )  # fmt: skip


def test_quick_run_writes_results_with_the_call_budget_and_compares_with_a_baseline(tmp_path: pathlib.Path) -> None:
    first = bench("--out", str(tmp_path / "first.json"))
    assert first.returncode == 0, first.stdout + first.stderr
    document = json.loads((tmp_path / "first.json").read_text())
    assert check_schema(document) == []
    assert document["quick"] is True
    assert set(document["scenarios"]) == {"steady_sandbox_10", "scale_up", "job_lifecycle", "router", "reactive"}
    figures = document["figures"]
    for name, figure in figures.items():
        assert figure["unit"] and figure["min"] <= figure["median"] <= figure["max"], name
        assert figure["runs"] == len(figure["samples"]) == 1, name

    def median(name: str) -> float:
        return float(figures[name]["median"])

    # Steady state: one runner page, one server page, nothing changed.
    assert median("reconcile.sandbox.n10.github_calls") == 1
    assert median("reconcile.sandbox.n10.openstack_server_pages") == 1
    assert median("reconcile.sandbox.n10.openstack_auth_calls") == 1
    assert median("reconcile.sandbox.n10.mutating_calls") == 0
    # Scale-up: one JIT registration and one create per runner.
    assert median("scale_up.n10.created") == median("scale_up.n10.github_jit_calls") == 10
    assert median("scale_up.n10.openstack_creates") == 10
    # One job: the JIT registration on GitHub; create and delete on the cloud.
    assert median("job_lifecycle.github_mutating_calls") == 1
    assert median("job_lifecycle.openstack_mutating_calls") == 2
    assert median("router.ferretdb.jobs_stored") == 700
    assert median("router.ferretdb.errors") == median("router.memory.errors") == 0
    assert figures["job_lifecycle.github_mutating_calls"]["holds"] is True
    # Reactive: every job's create request came after its insert; the consumers' memory was read.
    for variant in ("latency0ms.consumers1", "latency50ms.consumers2"):
        assert 0 < median(f"reactive.{variant}.p50") <= median(f"reactive.{variant}.p99"), variant
        assert median(f"reactive.{variant}.burst10.jobs_per_s") > 0, variant
        assert median(f"reactive.{variant}.consumer_peak_rss") > 0, variant
    assert document["distributions"] and all(len(d["quantiles"]) == 101 for d in document["distributions"].values())
    assert (tmp_path / "plots" / "latency.png").stat().st_size > 0
    assert "reconcile.sandbox.n10.github_calls" in first.stdout  # the table

    second = bench(
        "--only",
        "steady_sandbox_10",
        "--out",
        str(tmp_path / "second.json"),
        "--baseline",
        str(tmp_path / "first.json"),
    )
    assert second.returncode == 0, second.stdout + second.stderr
    comparison = second.stdout.split("change against", 1)[1].splitlines()
    rows = {line.split()[0]: line.split() for line in comparison[1:] if line and not line.startswith(("-", "figure"))}
    assert rows["reconcile.sandbox.n10.github_calls"][-1] == "="  # the same call count: no change
    assert rows["router.ferretdb.jobs_stored"][-1] == "gone"  # only in the baseline
    assert set(json.loads((tmp_path / "second.json").read_text())) == set(document)  # the same schema


def test_a_baseline_that_is_not_a_results_file_is_refused(tmp_path: pathlib.Path) -> None:
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"schema": 0}))
    refused = bench("--baseline", str(wrong), "--out", str(tmp_path / "out.json"))
    assert refused.returncode == 2
    assert "not a results file" in refused.stderr
    assert not (tmp_path / "out.json").exists()
