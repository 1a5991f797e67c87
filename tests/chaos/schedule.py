"""The seeded plan of a chaos run: a pure function of the seed and the run's knobs.

Every random choice of a run that is not timing (which job, which fault, when, which
process is killed, which pool changes) is drawn here, so the same seed gives the same
schedule on any machine; only how the system reacts to it depends on timing.
"""

from __future__ import annotations

import dataclasses
import random
import typing as t

#: Fault kinds and what each injects (see `run.apply_fault` for the sandbox calls).
FAULT_KINDS: t.Tuple[str, ...] = (
    "nova_5xx",  # Nova answers 500/503 to a create, listing or delete
    "github_5xx",  # GitHub answers 502 to a JIT registration, listing or delete
    "latency",  # a service answers seconds late
    "hang",  # a service answers nothing past the clients' timeout
    "reset",  # a service closes the connection without an answer
    "rate_limit_primary",  # GitHub's hourly budget used up
    "rate_limit_secondary",  # GitHub's secondary limit (403 with Retry-After)
    "quota_exceeded",  # Nova refuses a create: quota
    "quota_squeeze",  # the instance quota drops to what is in use for a while
    "vm_error",  # a VM goes to ERROR at boot (NoValidHost)
    "runner_never_online",  # the VM boots, its runner never connects
    "runner_crash_mid_job",  # the runner stops talking to GitHub in the middle of its job
    "webhook_dropped",  # GitHub never sends a delivery
    "webhook_duplicated",  # GitHub sends a delivery twice
    "mongodb_restart",  # the MongoDB server is SIGKILLed and started again later
    "pool_scope",  # a pool moves between its repository and the organization
    "pool_labels",  # a pool's labels change
    "pool_removed",  # a pool leaves the configuration (and comes back later)
)


@dataclasses.dataclass(frozen=True)
class Knobs:
    """What a run is made of; rates are per minute of the run."""

    duration: float = 60.0  # seconds of activity (jobs, faults and kills), before the quiet end
    jobs_per_minute: float = 40.0
    faults_per_minute: float = 30.0
    kills_per_minute: float = 12.0
    job_duration: t.Tuple[float, float] = (0.3, 2.0)


@dataclasses.dataclass(frozen=True)
class Step:
    at: float  # seconds from the start of the run
    what: str  # "job", "fault" or "kill"
    kind: str  # the fault kind, the process kind to kill, or "job"
    params: t.Mapping[str, t.Any] = dataclasses.field(default_factory=dict)

    def describe(self) -> str:
        params = " ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.what} {self.kind} {params}".rstrip()

    def line(self) -> str:
        return f"t+{self.at:7.2f}s {self.describe()}"


def _arrivals(rng: random.Random, per_minute: float, duration: float) -> t.List[float]:
    """Poisson arrival times in [0, duration)."""
    times, at = [], 0.0
    if per_minute <= 0:
        return times
    while True:
        at += rng.expovariate(per_minute / 60.0)
        if at >= duration:
            return times
        times.append(at)


def make_schedule(
    seed: int, knobs: Knobs, kill_kinds: t.Mapping[str, int], pools: t.Sequence[str], removable: str
) -> t.List[Step]:
    """The run's steps in time order. `kill_kinds` maps each process kind to its replica count.

    Every fault kind occurs at least once (runs too short for that get one of each anyway).
    """
    rng = random.Random(seed)
    steps: t.List[Step] = []
    lo, hi = knobs.job_duration
    for at in _arrivals(rng, knobs.jobs_per_minute, knobs.duration):
        steps.append(Step(at, "job", "job", {"duration": round(rng.uniform(lo, hi), 2)}))
    fault_times = _arrivals(rng, knobs.faults_per_minute, knobs.duration * 0.9)
    kinds = list(FAULT_KINDS) + [
        rng.choice(FAULT_KINDS) for _extra in range(max(0, len(fault_times) - len(FAULT_KINDS)))
    ]
    rng.shuffle(kinds)
    if len(fault_times) < len(kinds):
        fault_times = sorted(rng.uniform(0, knobs.duration * 0.9) for _kind in kinds)
    for at, kind in zip(fault_times, kinds, strict=False):
        steps.append(Step(at, "fault", kind, _fault_params(rng, kind, pools, removable)))
    kinds_to_kill = sorted(kill_kinds)
    for at in _arrivals(rng, knobs.kills_per_minute, knobs.duration):
        kind = rng.choice(kinds_to_kill)
        steps.append(Step(at, "kill", kind, {"replica": rng.randrange(kill_kinds[kind])}))
    steps.sort(key=lambda s: (s.at, s.what, s.kind))
    return steps


def _fault_params(rng: random.Random, kind: str, pools: t.Sequence[str], removable: str) -> t.Dict[str, t.Any]:
    if kind == "nova_5xx":
        route = rng.choice([("POST", "/servers"), ("GET", "/servers/detail"), ("DELETE", "/servers/{server_id}")])
        return {"method": route[0], "route": route[1], "status": rng.choice([500, 503]), "count": rng.randint(1, 3)}
    if kind == "github_5xx":
        base = "/repos/{owner}/{repo}/actions/runners"
        route = rng.choice([("POST", f"{base}/generate-jitconfig"), ("GET", base), ("DELETE", f"{base}/{{runner_id}}")])
        return {"method": route[0], "route": route[1], "status": 502, "count": rng.randint(1, 3)}
    if kind == "latency":
        return {
            "service": rng.choice(["nova", "github", "keystone"]),
            "delay": round(rng.uniform(0.5, 2.5), 2),
            "count": rng.randint(2, 8),
        }
    if kind in ("hang", "reset"):
        return {"service": rng.choice(["nova", "github"]), "count": 1}
    if kind in ("quota_exceeded", "vm_error", "runner_never_online", "runner_crash_mid_job"):
        return {"count": rng.randint(1, 3)}
    if kind in ("webhook_dropped", "webhook_duplicated"):
        return {"count": rng.randint(1, 4)}
    if kind in ("quota_squeeze", "mongodb_restart"):
        return {"seconds": round(rng.uniform(2.0, 8.0), 1)}
    if kind in ("pool_scope", "pool_labels"):
        return {"pool": rng.choice(list(pools))}
    if kind == "pool_removed":
        return {"pool": removable, "seconds": round(rng.uniform(5.0, 20.0), 1)}
    return {}
