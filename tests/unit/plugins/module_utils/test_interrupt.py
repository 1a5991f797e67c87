"""Stop requests (SIGINT, SIGTERM): the executor starts nothing new, completes what it began, the report says so."""

from __future__ import annotations

import os
import signal
import typing as t

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import CloudError, LockError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._interrupt import (
    Stopped,
    StopRequest,
    guard_with,
    stop_on_signals,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._manager import PlanExecutor
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import DeleteReason, Deletion, Plan
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reconcile import ReconcileOptions, Reconciler
from ansible_collections.selfhosted.github_runners.plugins.module_utils._report import PoolReport, ReconcileReport
from tests.unit.plugins.module_utils.fakes import NOW, FakeCloud, FakeGithub, MemoryLock, mutating_calls
from tests.unit.plugins.module_utils.test_manager import SCOPE, make_pool


def setup_function() -> None:
    MemoryLock.states.clear()


# --- StopRequest and the signal handlers -------------------------------------------------


def test_a_stop_request_refuses_every_later_call_with_one_text_and_keeps_the_first_reason() -> None:
    told: list[str] = []
    stop = StopRequest(on_request=told.append)
    stop.check()  # nothing requested: passes
    stop.request("SIGTERM")
    stop.request("SIGINT")
    assert stop.requested and stop.reason == "SIGTERM" and stop.signals == 2
    guard = guard_with(stop, lambda: None)
    messages = set()
    for call in ("register runner a", "delete server b"):
        with pytest.raises(Stopped) as caught:
            guard(call)
        messages.add(str(caught.value))
    assert messages == {"stopped by SIGTERM"}
    assert "no new creation or deletion is started" in told[0] and "again" in told[1]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_request_a_stop_without_raising_and_the_former_handlers_come_back(sig: signal.Signals) -> None:
    before = signal.getsignal(sig)
    stop = StopRequest()
    with stop_on_signals(stop):
        os.kill(os.getpid(), sig)
        os.kill(os.getpid(), sig)  # a second signal does not break off the stop either
        signal.raise_signal(sig)
        assert stop.reason == sig.name and stop.signals == 3
    assert signal.getsignal(sig) is before


def test_the_lock_is_checked_before_the_stop_request() -> None:
    stop = StopRequest()
    stop.request("SIGINT")

    def lost() -> None:
        raise LockError("lease 'ci1-small' was lost")

    with pytest.raises(LockError):
        guard_with(stop, lost)("create server x")
    with pytest.raises(Stopped):
        guard_with(stop, lambda: None)("create server x")


def test_sleep_ends_with_stopped_once_requested() -> None:
    stop = StopRequest()
    stop.sleep(0)
    stop.request("SIGINT")
    with pytest.raises(Stopped):
        stop.sleep(60)  # returns at once: the request is already there


# --- The executor under a stop request ----------------------------------------------------


class StopAt:
    """The executor's guard; requests a stop just after letting a call starting with `at` through (as a signal
    arriving while that call is under way would)."""

    def __init__(self, stop: StopRequest, at: str) -> None:
        self.stop = stop
        self.at = at
        self.calls: list[str] = []
        self._guard = guard_with(stop, lambda: None)

    def __call__(self, call: str) -> None:
        self.calls.append(call)
        self._guard(call)
        if call.startswith(self.at):
            self.stop.request("SIGINT")


def test_a_stop_after_a_jit_registration_gives_that_runner_its_vm_and_starts_no_other() -> None:
    github, cloud, stop = FakeGithub(), FakeCloud(), StopRequest()
    guard = StopAt(stop, "register runner")
    executor = PlanExecutor(github, cloud, "ci1", clock=lambda: NOW, guard=guard)
    result = executor.execute(make_pool(create_concurrency=1), Plan("small", desired=4, alive=0, create=4))
    assert github.calls["generate_jit_config"] == cloud.calls["create_server"] == 1
    # Every registered runner has its VM (none was rolled back, none left without one).
    assert {r.name for r in github.runners[SCOPE].values()} == {vm.name for vm in cloud.servers.values()}
    assert len(result.created) == 1
    assert result.stopped == "stopped by SIGINT" and result.errors == []


def test_a_stop_after_github_deleted_a_runner_deletes_its_vm_and_starts_no_other_deletion() -> None:
    github, cloud, stop = FakeGithub(), FakeCloud(), StopRequest()
    deletions = []
    for i in range(3):
        runner = github.add(SCOPE, f"ci1-small-00000000000{i}")
        vm = cloud.add(runner.name, "small", runner_id=runner.id)
        deletions.append(Deletion(runner.name, DeleteReason.SCALE_DOWN, vm.id, runner.id, scope=SCOPE))
    guard = StopAt(stop, "delete runner")
    executor = PlanExecutor(github, cloud, "ci1", clock=lambda: NOW, guard=guard)
    result = executor.execute(make_pool(create_concurrency=1), Plan("small", 0, 3, 2, tuple(deletions)))
    assert github.calls["delete_runner"] == cloud.calls["delete_server"] == 1
    assert {r.name for r in github.runners[SCOPE].values()} == {vm.name for vm in cloud.servers.values()}
    assert sum(len(names) for names in result.deleted.values()) == 1
    assert result.created == [] and github.calls["generate_jit_config"] == 0  # no creation after the stop
    assert result.stopped == "stopped by SIGINT"


def test_a_failed_create_after_a_stop_still_deletes_its_jit_record() -> None:
    github, cloud, stop = FakeGithub(), FakeCloud(), StopRequest()
    cloud.fail_create = CloudError("POST /servers", "boom", 500)
    executor = PlanExecutor(github, cloud, "ci1", clock=lambda: NOW, guard=StopAt(stop, "register runner"))
    executor.execute(make_pool(create_concurrency=1), Plan("small", desired=2, alive=0, create=2))
    assert github.calls["generate_jit_config"] == github.calls["delete_runner"] == 1
    assert github.runners[SCOPE] == {} and cloud.servers == {}


# --- The reconcile and its report ---------------------------------------------------------


def test_a_stopped_run_saves_every_pools_state_and_fails_naming_what_each_did_and_left() -> None:
    github, cloud, held = FakeGithub(), FakeCloud(), []
    stop = StopRequest()
    stop.request("SIGTERM")  # before the first mutating call
    pools = [make_pool(name="small", min_idle=2), make_pool(name="large", min_idle=3)]
    reconciler = Reconciler(github, cloud, lambda key: MemoryLock(key, held), clock=lambda: NOW, stop=stop)
    report = reconciler.run(pools, ReconcileOptions("ci1"))
    assert mutating_calls(github, cloud) == 0
    assert set(MemoryLock.states) == {"ci1-small", "ci1-large"}  # both states saved
    assert all("history" in state for state in MemoryLock.states.values())
    assert report.failed_pools == ["small", "large"] and report.errors == []
    by_name = {p.pool: p.as_dict() for p in report.pools}
    assert by_name["small"]["stopped"] == "stopped by SIGTERM"
    assert by_name["small"]["left"] == {"create": 2, "delete": []}
    assert by_name["large"]["left"] == {"create": 3, "delete": []}
    message = report.failure_message()
    assert message is not None and message.startswith("stopped by SIGTERM")
    assert "pool small: created 0, deleted 0; left for the next run: 2 creations, 0 deletions" in message
    assert "pool large" in message
    assert "stopped by SIGTERM: 2 creations and 0 deletions left" in report.pools[0].summary()


def test_a_pool_with_nothing_to_do_is_not_stopped() -> None:
    execution = PlanExecutor(FakeGithub(), FakeCloud(), "ci1").execute(make_pool(), Plan("small", 0, 0, 0))
    report = ReconcileReport([PoolReport("small", Plan("small", 0, 0, 0), [], execution, 0.0)], {})
    assert report.failure_message() is None and report.pools[0].as_dict()["stopped"] is None


def test_left_counts_what_neither_happened_nor_failed() -> None:
    github, cloud = FakeGithub(), FakeCloud()
    runner = github.add(SCOPE, "ci1-small-000000000001", busy=True)
    vm = cloud.add(runner.name, "small", runner_id=runner.id)
    gone = cloud.add("ci1-small-000000000002", "small", status="SHUTOFF", age=600)
    plan = Plan(
        "small",
        1,
        1,
        1,
        (
            Deletion(runner.name, DeleteReason.SCALE_DOWN, vm.id, runner.id, scope=SCOPE),
            Deletion(gone.name, DeleteReason.FINISHED, gone.id, None),
        ),
    )
    execution = PlanExecutor(github, cloud, "ci1", clock=lambda: NOW).execute(make_pool(), plan)
    left: dict[str, t.Any] = PoolReport("small", plan, [], execution, 0.0).left()
    # The busy runner was asked (and kept), the finished VM deleted; the one creation gave way to the busy runner.
    assert left == {"create": 0, "delete": []}
