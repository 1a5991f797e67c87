"""The chaos schedule: the same seed gives the same steps; every fault kind occurs; kills name real replicas."""

from __future__ import annotations

from tests.chaos.processes import KINDS
from tests.chaos.schedule import FAULT_KINDS, Knobs, make_schedule

REPLICAS = {name: kind.replicas for name, kind in KINDS.items()}
POOLS = ["a", "b", "c"]


def test_the_same_seed_gives_the_same_schedule() -> None:
    knobs = Knobs(duration=300)
    first = make_schedule(11, knobs, REPLICAS, POOLS, "c")
    assert make_schedule(11, knobs, REPLICAS, POOLS, "c") == first
    assert make_schedule(12, knobs, REPLICAS, POOLS, "c") != first


def test_every_fault_kind_occurs_even_in_a_short_run() -> None:
    steps = make_schedule(3, Knobs(duration=10, faults_per_minute=1), REPLICAS, POOLS, "c")
    assert {s.kind for s in steps if s.what == "fault"} == set(FAULT_KINDS)
    assert all(0 <= s.at < 10 for s in steps)


def test_kills_name_a_replica_of_a_known_kind_and_steps_are_in_time_order() -> None:
    steps = make_schedule(5, Knobs(duration=600, kills_per_minute=30), REPLICAS, POOLS, "c")
    kills = [s for s in steps if s.what == "kill"]
    assert len(kills) > 100
    assert all(0 <= s.params["replica"] < REPLICAS[s.kind] for s in kills)
    assert {s.kind for s in kills} == set(REPLICAS)
    assert [s.at for s in steps] == sorted(s.at for s in steps)


def test_rates_shape_the_schedule() -> None:
    steps = make_schedule(8, Knobs(duration=600, jobs_per_minute=60), REPLICAS, POOLS, "c")
    jobs = sum(1 for s in steps if s.what == "job")
    assert 450 < jobs < 750  # Poisson around 600
