"""The pure rules that let the reactive consumer and the reconcile share pools."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import DeleteReason, RunnerState
from ansible_collections.selfhosted.github_runners.plugins.module_utils._planner import plan_pool
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.consumer import unservable
from ansible_collections.selfhosted.github_runners.plugins.module_utils._state import (
    derive_states,
    in_flight_spawns,
    with_in_flight,
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
