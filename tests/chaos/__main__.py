"""`python -m tests.chaos [--seed N] [--duration S] ...`: one chaos run; exit 1 on any violation.

The environment gives the defaults (`make chaos` passes them): CHAOS_SEED, CHAOS_DURATION
(seconds of activity), CHAOS_JOBS_PER_MINUTE, CHAOS_FAULTS_PER_MINUTE, CHAOS_KILLS_PER_MINUTE,
CHAOS_DIR (where logs and summary.json go).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import sys
import tempfile

from tests.chaos.processes import COLLECTIONS

sys.path.insert(0, str(COLLECTIONS))  # the collection as ansible_collections.selfhosted.github_runners

from tests.chaos.run import ChaosRun
from tests.chaos.schedule import Knobs, make_schedule


def main(argv: list[str] | None = None) -> int:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--seed", type=int, default=int(env("CHAOS_SEED") or 1))
    parser.add_argument("--duration", type=float, default=float(env("CHAOS_DURATION") or 1800))
    parser.add_argument("--jobs-per-minute", type=float, default=float(env("CHAOS_JOBS_PER_MINUTE") or 36))
    parser.add_argument("--faults-per-minute", type=float, default=float(env("CHAOS_FAULTS_PER_MINUTE") or 12))
    parser.add_argument("--kills-per-minute", type=float, default=float(env("CHAOS_KILLS_PER_MINUTE") or 6))
    parser.add_argument(
        "--dir", type=pathlib.Path, default=pathlib.Path(env("CHAOS_DIR") or tempfile.mkdtemp(prefix="chaos-"))
    )
    parser.add_argument("--print-schedule", action="store_true", help="print the seed's schedule and exit")
    args = parser.parse_args(argv)
    knobs = Knobs(args.duration, args.jobs_per_minute, args.faults_per_minute, args.kills_per_minute)
    run = ChaosRun(args.seed, knobs, args.dir)
    if args.print_schedule:
        kinds = {name: kind.replicas for name, kind in run.kinds.items()}
        for step in make_schedule(args.seed, knobs, kinds, list(run.pools), "c"):
            print(step.line())
        return 0

    # `make chaos &` starts it with SIGINT ignored: SIGTERM and SIGINT both end the run cleanly.
    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    result = run.execute()
    print(result.report())
    (args.dir / "summary.json").write_text(json.dumps(result.figures(), indent=2) + "\n")
    return 1 if result.violations else 0


if __name__ == "__main__":
    sys.exit(main())
