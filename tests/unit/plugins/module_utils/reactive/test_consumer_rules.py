"""The pure rules that let the reactive consumer and the reconcile share pools."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import DeleteReason, RunnerState
from ansible_collections.selfhosted.github_runners.plugins.module_utils._planner import plan_pool
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.consumer import (
    census_suffices,
    unservable,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._state import (
    CENSUS_TTL,
    derive_states,
    fresh_census,
    in_flight_spawns,
    with_census,
    with_in_flight,
    without_census,
)
from tests.unit.plugins.module_utils.factories import NOW, TIMING, gh, pool, vm

S = RunnerState


def reactive(name: str, age: float, job_id: int = 7) -> object:
    return dataclasses.replace(vm(name, age=age), job_id=job_id)


def test_a_reactive_runner_waiting_for_its_job_is_not_scaled_down() -> None:
    views = derive_states([reactive("r1", age=30)], [gh("r1", online=True)], NOW, TIMING)
    assert views[0].state is S.IDLE
    plan = plan_pool(pool(min_idle=0), views)
    assert plan.delete == () and plan.alive == 1


def test_a_reactive_runner_idle_past_bootstrap_timeout_is_an_ordinary_idle_runner() -> None:
    views = derive_states([reactive("r1", age=TIMING.bootstrap_timeout + 1)], [gh("r1", online=True)], NOW, TIMING)
    plan = plan_pool(pool(min_idle=0), views)
    assert [d.reason for d in plan.delete] == [DeleteReason.SCALE_DOWN]


def test_a_spawn_in_flight_is_booting_not_an_orphan_and_counts_towards_max_runners() -> None:
    reserved = {"r1": NOW - datetime.timedelta(seconds=5), "r2": NOW - datetime.timedelta(seconds=5)}
    # r1: JIT record listed, VM not yet; r2: not listed at all yet.
    views = derive_states([], [gh("r1")], NOW, TIMING, None, in_flight=reserved)
    assert [(v.name, v.state) for v in views] == [("r1", S.BOOTING)]
    without = derive_states([], [gh("r1")], NOW, TIMING, None)
    assert without[0].state is S.ORPHAN  # what the reconcile would have deleted
    plan = plan_pool(pool(min_idle=3, max_runners=3), views, in_flight=1)
    assert (plan.alive, plan.create, plan.delete) == (2, 1, ())


def test_in_flight_reservations_expire_after_the_registration_grace() -> None:
    state = with_in_flight({"history": {}}, ["r1"], NOW - datetime.timedelta(seconds=TIMING.registration_grace), TIMING)
    state = with_in_flight(state, ["r2"], NOW, TIMING)
    assert set(in_flight_spawns(state, NOW, TIMING)) == {"r2"}
    assert "history" in state  # the rest of the pool's state is kept
    assert in_flight_spawns({"in_flight": "garbage"}, NOW, TIMING) == {}


@pytest.mark.parametrize(
    ("host", "repository", "labels", "problem"),
    [
        ("api.github.com", "octo/hello", ["self-hosted", "linux"], None),
        ("api.github.com", "OCTO/Hello", ["linux", "x64"], None),  # generic labels aside, names case-insensitive
        ("ghes.example.com", "octo/hello", ["linux"], "on ghes.example.com"),
        ("api.github.com", "octo/other", ["linux"], "outside pool small's scope"),
        ("api.github.com", "octo/hello", ["gpu"], "offers labels"),
        ("api.github.com", "octo/hello", ["linux", "arm64"], None),  # a pool without architecture labels
    ],
)
def test_unservable_jobs_are_named_with_the_reason(
    host: str, repository: str, labels: list[str], problem: str | None
) -> None:
    found = unservable(host, repository, labels, pool(), "api.github.com")
    assert (found is None) if problem is None else (problem in (found or "")), found


def test_an_organization_pool_serves_every_repository_of_its_organization_only() -> None:
    org = pool(repository=None, organization="octo")
    assert unservable("api.github.com", "octo/any", ["linux"], org, "api.github.com") is None
    assert "outside" in (unservable("api.github.com", "other/any", ["linux"], org, "api.github.com") or "")


def test_a_census_stands_in_for_a_listing_only_while_it_is_fresh() -> None:
    state = with_census({"history": {}}, ["r2", "r1", "r1"], NOW)
    assert state["census"]["names"] == ["r1", "r2"] and state["history"] == {}
    assert fresh_census(state, NOW, TIMING) == {"r1", "r2"}
    assert fresh_census(state, NOW + datetime.timedelta(seconds=CENSUS_TTL - 1), TIMING) == {"r1", "r2"}
    assert fresh_census(state, NOW + datetime.timedelta(seconds=CENSUS_TTL), TIMING) is None
    # Never longer than half the registration grace: every reservation since it is still in flight.
    short = dataclasses.replace(TIMING, registration_grace=8.0)
    assert fresh_census(state, NOW + datetime.timedelta(seconds=4), short) is None
    # A census dated ahead of this host's clock by more than a little is another clock's: not trusted.
    assert fresh_census(state, NOW - datetime.timedelta(seconds=5), TIMING) is None
    assert fresh_census(without_census(state), NOW, TIMING) is None
    assert without_census(state) == {"history": {}}


@pytest.mark.parametrize(
    "census",
    [None, "r1", {"at": "yesterday", "names": []}, {"at": NOW.isoformat()}, {"at": NOW.isoformat(), "names": [1]}],
)
def test_a_census_of_the_wrong_shape_is_no_census(census: object) -> None:
    assert fresh_census({"census": census}, NOW, TIMING) is None


def test_a_census_counts_only_and_never_decides_a_full_pool_or_a_runner_that_may_exist() -> None:
    spec = pool(max_runners=5)
    census = frozenset({"r1", "r2"})
    in_flight = {"r3": NOW}
    assert census_suffices(census, in_flight, ["r4", "r5"], spec)
    # The batch would fill the pool past what the census leaves: counted on a listing instead.
    assert not census_suffices(census, in_flight, ["r4", "r5", "r6"], spec)
    # A runner of the batch is counted already (in the census, or in flight): a listing says whether it exists.
    assert not census_suffices(census, in_flight, ["r2"], spec)
    assert not census_suffices(census, in_flight, ["r3"], spec)


def test_a_reservation_ends_once_its_vm_is_listed_whatever_its_status() -> None:
    state = with_in_flight({}, ["r1", "r2"], NOW, TIMING)
    later = NOW + datetime.timedelta(seconds=5)
    # r1's VM was listed (it may have run its job and powered off already): its status counts from now on.
    state = with_in_flight(state, ["r3"], later, TIMING, seen={"r1"})
    assert set(in_flight_spawns(state, later, TIMING)) == {"r2", "r3"}
