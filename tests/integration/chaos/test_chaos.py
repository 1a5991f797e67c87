"""A short chaos run in every test run: the same harness as `make chaos`, on a fixed seed.

Jobs arrive, two reconciles, two consumers and the router run and are SIGKILLed, and every
fault kind is injected at least once; every invariant must hold (see tests/chaos).
CHAOS_SEED picks another schedule.
"""

from __future__ import annotations

import os
import pathlib
import typing as t

from tests.chaos.run import ChaosRun
from tests.chaos.schedule import FAULT_KINDS, Knobs

SEED = int(os.environ.get("CHAOS_SEED") or 20261202)


def test_a_short_chaos_run_keeps_every_promise(tmp_path: pathlib.Path) -> None:
    knobs = Knobs(duration=35, jobs_per_minute=45, faults_per_minute=40, kills_per_minute=15)
    result = ChaosRun(SEED, knobs, tmp_path, echo=lambda line: None).execute()
    report = result.report()
    print(report)
    assert result.violations == [], report
    assert set(result.faults) == set(FAULT_KINDS), report
    assert result.jobs > 0 and result.process_runs["reconcile"] > 2, report
    assert result.process_runs["consumer"] >= 2 and result.reactive_spawns > 0, report
    assert sum(result.kills.values()) > 0, report


class _ForcedReconciles(ChaosRun):
    """Reconciles that flush with force: they delete busy runners, which the run must report."""

    def module_args(self) -> dict[str, t.Any]:
        args = super().module_args()
        if self.mode == "present":
            for key in ("job_queue", "job_queue_backfill", "job_queue_grace", "count_queued_jobs"):
                args.pop(key, None)
            args.update(state="flushed", force=True)
        return args


def test_a_run_reports_a_busy_runner_deleted_with_the_seed_and_its_trace(tmp_path: pathlib.Path) -> None:
    # Jobs long enough that every flush finds the runners that took them busy.
    knobs = Knobs(duration=12, jobs_per_minute=60, faults_per_minute=0, kills_per_minute=0, job_duration=(8.0, 12.0))
    result = _ForcedReconciles(SEED, knobs, tmp_path, echo=lambda line: None).execute()
    report = result.report()
    busy = [v for v in result.violations if v.invariant == "no busy runner deleted"]
    assert busy, report
    assert f"CHAOS_SEED={SEED}" in report
    trace = busy[0].trace
    assert any(" job_in_progress " in line for line in trace) and any(" server_delete " in line for line in trace)
