"""One broken scope or pool fails alone: the other pools are reconciled, the failure names the pool."""

from __future__ import annotations

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import (
    CloudError,
    GithubError,
    RunnerError,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import QueuedJob, Scope, ScopeKind
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reconcile import (
    ReconcileOptions,
    Reconciler,
)
from tests.unit.plugins.module_utils.fakes import NOW, FakeCloud, FakeGithub, MemoryLock, mutating_calls
from tests.unit.plugins.module_utils.test_manager import SCOPE, make_pool

GONE = Scope(ScopeKind.REPOSITORY, "octo-org/renamed")
NOT_FOUND = GithubError("GET /repos/octo-org/renamed/actions/runners", "Not Found", 404)


def make_reconciler(github: FakeGithub, cloud: FakeCloud) -> Reconciler:
    return Reconciler(github, cloud, lambda key: MemoryLock(key, []), clock=lambda: NOW)


def setup_function() -> None:
    MemoryLock.states.clear()


def test_a_scope_whose_listing_fails_fails_its_pool_only() -> None:
    github, cloud = FakeGithub(), FakeCloud()
    github.list_errors[GONE] = NOT_FOUND
    good, bad = make_pool(name="good", min_idle=2), make_pool(name="bad", scope=GONE, min_idle=2)
    report = make_reconciler(github, cloud).run([bad, good], ReconcileOptions("ci1"))
    by_name = {p.pool: p for p in report.pools}
    assert len(by_name["good"].execution.created) == 2
    assert by_name["good"].as_dict()["failed"] is False
    failed = by_name["bad"].as_dict()
    assert failed["failed"] is True and failed["reconciled"] is False
    assert failed["created"] == [] and failed["plan"]["create"] == 0
    (error,) = failed["errors"]
    assert error.startswith("pool bad: cannot list the runners of repository octo-org/renamed: GitHub GET")
    assert "(HTTP 404)" in error
    assert "does not exist, or the token lacks admin rights on it" in error
    assert report.failed_pools == ["bad"]
    message = report.failure_message()
    assert message is not None and message.startswith("1 of 2 pools failed (bad); 1 reconciled without error")


def test_a_failed_scope_deletes_nothing_of_its_pool() -> None:
    """Without its listing, the pool's VMs would look as if their runners were gone: nothing is touched."""
    github, cloud = FakeGithub(), FakeCloud()
    runner = github.add(GONE, "ci1-bad-0123456789ab")
    cloud.add("ci1-bad-0123456789ab", "bad", runner_id=runner.id, scope=GONE, age=3600)
    github.list_errors[GONE] = GithubError("GET /orgs/x/actions/runners", "Forbidden", 403)
    report = make_reconciler(github, cloud).run(
        [make_pool(name="bad", scope=GONE, min_idle=0)], ReconcileOptions("ci1")
    )
    assert mutating_calls(github, cloud) == 0
    assert "the token may not manage the self-hosted runners" in report.errors[0]
    assert report.pools[0].summary().startswith("bad: not reconciled: pool bad: cannot list the runners")


def test_a_vm_recorded_in_a_failed_scope_fails_the_pool_that_moved() -> None:
    github, cloud = FakeGithub(), FakeCloud()
    cloud.add("ci1-small-0123456789ab", "small", runner_id=7, scope=GONE)
    github.list_errors[GONE] = NOT_FOUND
    report = make_reconciler(github, cloud).run([make_pool(min_idle=1)], ReconcileOptions("ci1"))
    assert report.failed_pools == ["small"]
    assert mutating_calls(github, cloud) == 0


def test_an_error_while_one_pool_is_carried_out_fails_that_pool_only() -> None:
    class FailingGroup(FakeGithub):
        def runner_group_id(self, scope: Scope, name: str | None) -> int:
            if name == "missing":
                raise RunnerError("no such group")
            return 1

    github, cloud = FailingGroup(), FakeCloud()
    bad = make_pool(name="bad", runner_group="missing", min_idle=1)
    report = make_reconciler(github, cloud).run([bad, make_pool(name="good", min_idle=1)], ReconcileOptions("ci1"))
    assert report.failed_pools == ["bad"]
    assert len(report.pools[1].execution.created) == 1


def test_an_unresolved_name_fails_its_pool_and_names_it() -> None:
    github, cloud = FakeGithub(), FakeCloud()
    cloud.unknown["flavor"].add("m1.smal")
    pools = [make_pool(name="good", min_idle=1), make_pool(name="typo", flavor="m1.smal", min_idle=1)]
    report = make_reconciler(github, cloud).run(pools, ReconcileOptions("ci1"))
    assert report.failed_pools == ["typo"]
    message = report.failure_message()
    assert message is not None and "(typo)" in message and "flavor" in message
    assert len(report.pools[0].execution.created) == 1


def test_a_failed_queued_job_count_is_a_warning_and_the_pools_are_still_sized_by_min_idle() -> None:
    github, cloud = FakeGithub(), FakeCloud()
    other = Scope(ScopeKind.REPOSITORY, "octo-org/other")
    github.queued[SCOPE] = [QueuedJob(i, 1, "octo-org/app", ("self-hosted", "small"), None) for i in range(3)]
    github.list_errors[other] = GithubError("GET /repos/octo-org/other/actions/runs", "Forbidden", 403)
    pools = [make_pool(name="other", scope=other, min_idle=1), make_pool(name="small", min_idle=1)]
    report = make_reconciler(github, cloud).run(pools, ReconcileOptions("ci1", count_queued_jobs=True))
    assert any("queued jobs of repository octo-org/other were not counted" in w for w in report.warnings)
    assert len(report.pools[1].execution.created) == 3  # the other scope's jobs were still counted


def test_a_failed_server_listing_fails_the_run_and_says_so() -> None:
    github, cloud = FakeGithub(), FakeCloud()
    cloud.fail_list = CloudError("GET /servers/detail", "Service Unavailable", 503)
    with pytest.raises(RunnerError, match=r"^no pool was reconciled: the server listing failed: OpenStack GET"):
        make_reconciler(github, cloud).run([make_pool()], ReconcileOptions("ci1"))


def test_inspect_reports_the_pool_whose_listing_failed_and_views_the_others() -> None:
    github, cloud = FakeGithub(), FakeCloud()
    github.list_errors[GONE] = NOT_FOUND
    pools = [make_pool(name="good"), make_pool(name="bad", scope=GONE)]
    reconciler = make_reconciler(github, cloud)
    inspection = reconciler.inspect(pools, "ci1")
    assert list(inspection.errors) == ["bad"]
    assert inspection.errors["bad"].startswith("pool bad: cannot list the runners")
    assert inspection.views == {"good": [], "bad": []}
    with pytest.raises(RunnerError, match="pool bad"):
        reconciler.view(pools, "ci1")
