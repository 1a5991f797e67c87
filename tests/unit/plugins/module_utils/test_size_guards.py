"""Guards on size: creations per run, the bound on max_runners, and the warnings that say so."""

from __future__ import annotations

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import MAX_RUNNERS_LIMIT
from ansible_collections.selfhosted.github_runners.plugins.module_utils._planner import plan_pool
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reconcile import ReconcileOptions
from tests.unit.plugins.module_utils.factories import pool
from tests.unit.plugins.module_utils.fakes import FakeCloud, FakeGithub, MemoryLock, mutating_calls
from tests.unit.plugins.module_utils.test_reconcile import make_reconciler

HUGE = {"min_idle": 100000, "max_runners": MAX_RUNNERS_LIMIT}


def setup_function() -> None:
    MemoryLock.states.clear()


def test_a_huge_min_idle_creates_at_most_max_create_per_run_and_warns_twice() -> None:
    plan = plan_pool(pool(**HUGE), [])
    assert (plan.desired, plan.create, plan.limited) == (MAX_RUNNERS_LIMIT, 20, MAX_RUNNERS_LIMIT - 20)
    assert plan.warnings == (
        "pool small: min_idle (100000) is above max_runners (1000): the pool is capped at 1000 runners",
        "pool small: 980 more runner(s) wanted than max_create_per_run (20) allows in one run: they are left for"
        " later runs",
    )


def test_a_pool_within_its_guards_plans_without_warnings() -> None:
    plan = plan_pool(pool(min_idle=20, max_runners=20), [])
    assert (plan.create, plan.limited, plan.warnings) == (20, 0, ())
    assert plan_pool(pool(**HUGE), [], mode="absent").warnings == ()


def test_the_reconcile_creates_max_create_per_run_and_says_so_in_check_mode_too() -> None:
    github, cloud, held = FakeGithub(), FakeCloud(), []
    spec = pool(**HUGE, max_create_per_run=3)
    checked = make_reconciler(github, cloud, held).run([spec], ReconcileOptions("ci1", check_mode=True))
    assert mutating_calls(github, cloud) == 0
    assert checked.pools[0].plan.create == 3
    assert any("max_create_per_run (3)" in w for w in checked.warnings)
    assert any("capped at 1000 runners" in w for w in checked.warnings)

    report = make_reconciler(github, cloud, held).run([spec], ReconcileOptions("ci1"))
    assert len(report.pools[0].execution.created) == 3
    assert github.calls["generate_jit_config"] == cloud.calls["create_server"] == 3
    assert report.limited == ["small"]
    result = report.pools[0].as_dict()
    assert result["plan"]["limited"] == MAX_RUNNERS_LIMIT - 3
    assert "997 more left for later runs (max_create_per_run)" in result["summary"]
    assert any("max_create_per_run (3)" in w for w in report.warnings)
