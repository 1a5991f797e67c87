"""One runner VM by name: its deletion goes the reconcile's way (planner, GitHub first, recorded scope)."""

from __future__ import annotations

import dataclasses
import typing as t

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import RunnerError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import Scope, ScopeKind
from ansible_collections.selfhosted.github_runners.plugins.module_utils._runner_vm import (
    RunnerBusyError,
    ensure_runner_vm,
)
from tests.unit.plugins.module_utils.fakes import NOW, FakeCloud, FakeGithub
from tests.unit.plugins.module_utils.test_manager import SCOPE, make_pool

NAME = "ci1-small-00000000beef"
ORG = Scope(ScopeKind.ORGANIZATION, "octo-org")


def absent(github: FakeGithub, cloud: FakeCloud, **kwargs: t.Any) -> dict[str, t.Any]:
    pool = kwargs.pop("pool", make_pool())
    return ensure_runner_vm(github, cloud, "ci1", pool, NAME, "absent", clock=lambda: NOW, **kwargs)


def test_vm_whose_runner_the_listing_missed_is_kept_while_github_has_it() -> None:
    github, cloud = FakeGithub(), FakeCloud()
    runner = github.add(SCOPE, NAME, busy=True)
    github.unlisted.add(runner.id)
    vm = cloud.add(NAME, "small", age=600, runner_id=runner.id, scope=SCOPE)
    with pytest.raises(RunnerError, match="still registered on GitHub"):
        absent(github, cloud)
    assert vm.id in cloud.servers
    assert github.log[-1] == ("runner_exists", (SCOPE, runner.id))
    # Once GitHub no longer has it, the VM goes.
    del github.runners[SCOPE][runner.id]
    assert absent(github, cloud)["changed"] is True
    assert cloud.servers == {}


def test_github_is_asked_in_the_scope_recorded_on_the_vm() -> None:
    github, cloud = FakeGithub(), FakeCloud()
    runner = github.add(SCOPE, NAME, online=True, busy=True)  # registered in the repository
    vm = cloud.add(NAME, "small", runner_id=runner.id, scope=SCOPE)
    with pytest.raises(RunnerBusyError):
        absent(github, cloud, pool=make_pool(scope=ORG))  # the pool moved to the organization
    assert vm.id in cloud.servers
    idle = dataclasses.replace(runner, busy=False)
    github.runners[SCOPE][runner.id] = idle
    absent(github, cloud, pool=make_pool(scope=ORG))
    assert cloud.servers == {} and github.runners[SCOPE] == {}
    assert ("delete_runner", runner.id) in github.log


class BusyOnDelete(FakeGithub):
    """A runner that takes a job between the listing and the DELETE: GitHub answers 422."""

    def delete_runner(self, scope: Scope, runner_id: int) -> t.Literal["deleted", "not_found", "busy"]:
        self._record("delete_runner", runner_id)
        return "busy"


def test_a_422_keeps_the_vm() -> None:
    github, cloud = BusyOnDelete(), FakeCloud()
    runner = github.add(SCOPE, NAME, online=True)
    vm = cloud.add(NAME, "small", runner_id=runner.id, scope=SCOPE)
    with pytest.raises(RunnerBusyError, match="took a job"):
        absent(github, cloud)
    assert vm.id in cloud.servers


def test_force_deletes_a_busy_runners_vm_despite_the_422() -> None:
    github, cloud = BusyOnDelete(), FakeCloud()
    runner = github.add(SCOPE, NAME, online=True, busy=True)
    cloud.add(NAME, "small", runner_id=runner.id, scope=SCOPE)
    with pytest.raises(RunnerBusyError, match="running a job"):
        absent(github, cloud)
    absent(github, cloud, force=True)
    assert cloud.servers == {}


def test_vm_without_recorded_scope_is_not_deleted_on_a_404_alone() -> None:
    github, cloud = FakeGithub(), FakeCloud()
    vm = cloud.add(NAME, "small", age=600, runner_id=4242)  # created before scopes were recorded
    with pytest.raises(RunnerBusyError, match="records no GitHub scope"):
        absent(github, cloud, check_mode=True)
    with pytest.raises(RunnerBusyError, match="records no GitHub scope"):
        absent(github, cloud)
    assert vm.id in cloud.servers
    assert absent(github, cloud, force=True)["changed"] is True
    assert cloud.servers == {}
    assert github.log[-1] == ("runner_exists", (SCOPE, 4242))


def test_check_mode_asks_nothing_that_mutates() -> None:
    github, cloud = FakeGithub(), FakeCloud()
    runner = github.add(SCOPE, NAME, online=True)
    cloud.add(NAME, "small", runner_id=runner.id, scope=SCOPE)
    result = absent(github, cloud, check_mode=True)
    assert result["changed"] is True and result["runner"]["scope"] == "repository:octo-org/app"
    assert github.calls["delete_runner"] == github.calls["runner_exists"] == 0
    assert cloud.calls["delete_server"] == 0
