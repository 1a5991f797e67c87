"""A short chaos run in every test run: the same harness as `make chaos`, on a fixed seed.

Jobs arrive, two reconciles and the router run and are SIGKILLed, and every fault kind is
injected at least once; every invariant must hold (see tests/chaos). CHAOS_SEED picks
another schedule.
"""

from __future__ import annotations

import os
import pathlib

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
    assert sum(result.kills.values()) > 0, report
