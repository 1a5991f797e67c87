"""Report shaping: the one-line summary people read, in real runs and in check mode."""

from __future__ import annotations

from ansible_collections.selfhosted.github_runners.plugins.module_utils._manager import ExecutionResult
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import (
    DeleteReason,
    Deletion,
    Plan,
    RunnerState,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._report import PoolReport
from tests.unit.plugins.module_utils.factories import view

VIEWS = [
    view("ci1-small-000000000001", RunnerState.IDLE),
    view("ci1-small-000000000002", RunnerState.IDLE),
    view("ci1-small-000000000003", RunnerState.BUSY),
    view("ci1-small-000000000004", RunnerState.FINISHED),
]
PLAN = Plan(
    pool="small",
    desired=3,
    alive=3,
    create=1,
    delete=(Deletion("ci1-small-000000000004", DeleteReason.FINISHED, "vm-4", None),),
)


def test_summary_of_a_run_counts_what_was_done_by_reason() -> None:
    execution = ExecutionResult(created=["ci1-small-000000000005"])
    execution.deleted = {"finished": ["ci1-small-000000000004"], "scale_down": []}
    report = PoolReport("small", PLAN, VIEWS, execution, 0.1)
    assert report.summary() == "small: idle 2, busy 1, finished 1; created 1, deleted 1 (finished 1)"
    assert report.as_dict()["summary"] == report.summary()


def test_summary_in_check_mode_tells_what_the_plan_would_do() -> None:
    report = PoolReport("small", PLAN, VIEWS, ExecutionResult(), 0.1, check_mode=True)
    assert report.summary() == "small: idle 2, busy 1, finished 1; would create 1, would delete 1 (finished 1)"


def test_summary_of_an_emptied_pool_with_deferred_busy_runners() -> None:
    plan = Plan(pool="small", desired=0, alive=1, create=0, deferred=("ci1-small-000000000003",))
    report = PoolReport("small", plan, [VIEWS[2]], ExecutionResult(), 0.1)
    assert report.summary() == "small: busy 1; created 0, deleted 0; busy runners left for a later run: 1"


def test_summary_tells_unconfirmed_vms_other_scopes_and_unlisted_pools() -> None:
    unconfirmed = view("ci1-old-000000000009", RunnerState.FINISHED, with_runner=False)
    plan = Plan(pool="old", desired=0, alive=1, create=0, deferred=(unconfirmed.name,))
    report = PoolReport("old", plan, [unconfirmed], ExecutionResult(), 0.1, scope_changed=[unconfirmed.name])
    report.unlisted = True
    assert report.summary() == (
        "old (not in pools): finished 1; created 0, deleted 0;"
        " VMs kept until GitHub can tell their runner is gone: 1; registered in another scope than the pool's: 1"
    )
    assert report.as_dict()["unlisted"] is True
    assert report.as_dict()["scope_changed"] == [unconfirmed.name]
