"""The plan executor's safety rules, against in-memory fakes of GitHub and the cloud."""

from __future__ import annotations

import threading
import typing as t

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import PoolSpec
from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import (
    CloudError,
    GithubError,
    LockError,
    QuotaExceededError,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._manager import PlanExecutor
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import (
    DeleteReason,
    Deletion,
    Plan,
    Scope,
    ScopeKind,
)
from tests.unit.plugins.module_utils.fakes import NOW, FakeCloud, FakeGithub, mutating_calls

SCOPE = Scope(ScopeKind.REPOSITORY, "octo-org/app")


def make_pool(**overrides: object) -> PoolSpec:
    fields: dict[str, object] = dict(
        name="small",
        scope=SCOPE,
        labels=("self-hosted", "small"),
        flavor="m1.small",
        image="img",
        networks=("net",),
        min_idle=2,
        max_runners=5,
        create_concurrency=2,
    )
    fields.update(overrides)
    return PoolSpec(**fields)  # type: ignore[arg-type]


@pytest.fixture
def clients() -> tuple[FakeGithub, FakeCloud, PlanExecutor]:
    github, cloud = FakeGithub(), FakeCloud()
    return github, cloud, PlanExecutor(github, cloud, "ci1", clock=lambda: NOW)


def test_create_registers_jit_runner_then_server(clients: tuple[FakeGithub, FakeCloud, PlanExecutor]) -> None:
    github, cloud, executor = clients
    result = executor.execute(make_pool(), Plan("small", desired=2, alive=0, create=2))
    assert len(result.created) == 2
    assert result.errors == []
    assert sorted(vm.name for vm in cloud.servers.values()) == sorted(result.created)
    # Each server carries the id of its own JIT runner.
    runners = {r.name: r.id for r in github.runners[SCOPE].values()}
    assert {vm.name: vm.runner_id for vm in cloud.servers.values()} == runners
    for name in result.created:
        assert name.startswith("ci1-small-")
        jit = [i for i, (op, arg) in enumerate(github.log) if op == "generate_jit_config" and arg == name]
        assert jit, name


def test_failed_server_create_deletes_the_jit_record(clients: tuple[FakeGithub, FakeCloud, PlanExecutor]) -> None:
    github, cloud, executor = clients
    cloud.fail_create = CloudError("create server", "No valid host was found.", 500)
    result = executor.execute(make_pool(), Plan("small", desired=1, alive=0, create=1))
    assert result.created == []
    assert github.runners[SCOPE] == {}
    assert github.calls["delete_runner"] == 1
    assert any("No valid host was found." in e for e in result.errors)


def test_quota_error_stops_further_creates(clients: tuple[FakeGithub, FakeCloud, PlanExecutor]) -> None:
    github, cloud, executor = clients
    cloud.fail_create = QuotaExceededError("create server", "Quota exceeded for instances", 403)
    result = executor.execute(make_pool(create_concurrency=1), Plan("small", desired=5, alive=0, create=5))
    assert cloud.calls["create_server"] == 1  # no retry storm
    assert github.runners[SCOPE] == {}
    assert len(result.errors) == 1 and "Quota exceeded" in result.errors[0]


def test_busy_runner_keeps_its_vm(clients: tuple[FakeGithub, FakeCloud, PlanExecutor]) -> None:
    github, cloud, executor = clients
    runner = github.add(SCOPE, "ci1-small-aaaaaaaaaaaa", busy=True)  # took a job after the listing
    vm = cloud.add(runner.name, "small", runner_id=runner.id)
    plan = Plan("small", 0, 1, 0, (Deletion(runner.name, DeleteReason.SCALE_DOWN, vm.id, runner.id, scope=SCOPE),))
    result = executor.execute(make_pool(), plan)
    assert result.skipped_busy == [runner.name]
    assert vm.id in cloud.servers
    assert cloud.calls["delete_server"] == 0
    assert not result.changed


def test_forced_deletion_of_busy_runner_deletes_vm(clients: tuple[FakeGithub, FakeCloud, PlanExecutor]) -> None:
    github, cloud, executor = clients
    runner = github.add(SCOPE, "ci1-small-aaaaaaaaaaaa", busy=True)
    vm = cloud.add(runner.name, "small", runner_id=runner.id)
    plan = Plan(
        "small", 0, 1, 0, (Deletion(runner.name, DeleteReason.ABSENT, vm.id, runner.id, busy=True, scope=SCOPE),)
    )
    result = executor.execute(make_pool(), plan)
    assert vm.id not in cloud.servers
    assert result.deleted == {"absent": [runner.name]}


def test_vm_deleted_only_after_github_answered(clients: tuple[FakeGithub, FakeCloud, PlanExecutor]) -> None:
    github, cloud, executor = clients
    runner = github.add(SCOPE, "ci1-small-bbbbbbbbbbbb", online=False)
    vm = cloud.add(runner.name, "small", status="SHUTOFF", runner_id=runner.id)
    plan = Plan("small", 0, 0, 0, (Deletion(runner.name, DeleteReason.FINISHED, vm.id, runner.id, scope=SCOPE),))
    executor.execute(make_pool(), plan)
    ops = [entry[0] for entry in github.log + cloud.log]
    assert ops.index("delete_runner") < ops.index("delete_server")
    assert result_is_clean(github, cloud)


def test_vm_without_listed_runner_is_deleted_without_asking_github(
    clients: tuple[FakeGithub, FakeCloud, PlanExecutor],
) -> None:
    github, cloud, executor = clients
    vm = cloud.add("ci1-small-cccccccccccc", "small", status="SHUTOFF")
    plan = Plan("small", 0, 0, 0, (Deletion(vm.name, DeleteReason.FINISHED, vm.id, None, scope=SCOPE),))
    result = executor.execute(make_pool(), plan)
    assert github.calls["delete_runner"] == 0
    assert result.deleted == {"finished": [vm.name]}


def result_is_clean(github: FakeGithub, cloud: FakeCloud) -> bool:
    return not github.runners[SCOPE] and not cloud.servers


class FailingDeleteGithub(FakeGithub):
    def delete_runner(self, scope: Scope, runner_id: int) -> t.Literal["deleted", "not_found", "busy"]:
        self._record("delete_runner", runner_id)
        raise GithubError(f"DELETE runners/{runner_id}", "Bad Gateway", 502)


def test_failed_deletion_is_not_replaced_beyond_max_runners() -> None:
    github, cloud = FailingDeleteGithub(), FakeCloud()
    executor = PlanExecutor(github, cloud, "ci1", clock=lambda: NOW)
    runner = github.add(SCOPE, "ci1-small-aaaaaaaaaaaa")
    vm = cloud.add(runner.name, "small", runner_id=runner.id)
    # The plan counted the expired runner as gone and wants one replacement.
    plan = Plan("small", 1, 0, 1, (Deletion(runner.name, DeleteReason.EXPIRED, vm.id, runner.id, scope=SCOPE),))
    result = executor.execute(make_pool(max_runners=1), plan)
    assert result.undeleted == [runner.name]
    assert result.created == []
    assert vm.id in cloud.servers
    assert any("Bad Gateway" in e for e in result.errors)


def test_forced_busy_record_without_vm_is_not_reported_deleted(
    clients: tuple[FakeGithub, FakeCloud, PlanExecutor],
) -> None:
    github, _cloud, executor = clients
    runner = github.add(SCOPE, "ci1-small-aaaaaaaaaaaa", online=False, busy=True)
    plan = Plan(
        "small", 0, 0, 0, (Deletion(runner.name, DeleteReason.ABSENT, None, runner.id, busy=True, scope=SCOPE),)
    )
    result = executor.execute(make_pool(), plan)
    assert result.deleted == {}
    assert result.skipped_busy == [runner.name]
    assert not result.changed


def test_running_vm_whose_runner_the_listing_missed_is_kept(
    clients: tuple[FakeGithub, FakeCloud, PlanExecutor],
) -> None:
    github, cloud, executor = clients
    runner = github.add(SCOPE, "ci1-small-aaaaaaaaaaaa")  # exists, but the listing skipped it
    vm = cloud.add(runner.name, "small", runner_id=runner.id)
    deletion = Deletion(runner.name, DeleteReason.FINISHED, vm.id, runner.id, confirm_gone=True, scope=SCOPE)
    result = executor.execute(make_pool(), Plan("small", 1, 0, 1, (deletion,)))
    assert vm.id in cloud.servers and runner.id in github.runners[SCOPE]
    assert github.calls["delete_runner"] == 0
    assert result.undeleted == [runner.name] and result.created == []  # no replacement for a live runner
    # Once GitHub no longer has it, the VM goes without a DELETE on GitHub.
    del github.runners[SCOPE][runner.id]
    executor.execute(make_pool(), Plan("small", 0, 0, 0, (deletion,)))
    assert vm.id not in cloud.servers
    assert github.calls["delete_runner"] == 0


ORG = Scope(ScopeKind.ORGANIZATION, "octo-org")


def test_created_vms_record_the_scope_of_their_runner(clients: tuple[FakeGithub, FakeCloud, PlanExecutor]) -> None:
    github, cloud, executor = clients
    executor.execute(make_pool(scope=ORG), Plan("small", desired=1, alive=0, create=1))
    [vm] = list(cloud.servers.values())
    assert vm.scope == ORG
    assert [r.name for r in github.runners[ORG].values()] == [vm.name]


def test_github_is_asked_in_the_deletions_scope_not_the_pools(
    clients: tuple[FakeGithub, FakeCloud, PlanExecutor],
) -> None:
    github, cloud, executor = clients
    # Registered in the repository, busy; the pool has moved to the organization since.
    runner = github.add(SCOPE, "ci1-small-aaaaaaaaaaaa", busy=True)
    vm = cloud.add(runner.name, "small", runner_id=runner.id, scope=SCOPE)
    unlisted = Deletion(runner.name, DeleteReason.FINISHED, vm.id, runner.id, confirm_gone=True, scope=SCOPE)
    listed = Deletion(runner.name, DeleteReason.SCALE_DOWN, vm.id, runner.id, scope=SCOPE)
    for deletion in (unlisted, listed):
        executor.execute(make_pool(scope=ORG), Plan("small", 0, 1, 0, (deletion,)))
    assert vm.id in cloud.servers
    assert github.log == [("runner_exists", (SCOPE, runner.id)), ("delete_runner", runner.id)]


def test_deletion_that_needs_github_but_names_no_scope_deletes_nothing(
    clients: tuple[FakeGithub, FakeCloud, PlanExecutor],
) -> None:
    github, cloud, executor = clients
    vm = cloud.add("ci1-small-aaaaaaaaaaaa", "small", status="SHUTOFF", runner_id=5)
    deletion = Deletion(vm.name, DeleteReason.ABSENT, vm.id, 5)
    result = executor.execute_deletions(Plan("gone", 0, 0, 0, (deletion,)))
    assert result.undeleted == [vm.name] and not result.changed
    assert vm.id in cloud.servers and github.total_calls == 0


class LosingGuard:
    """Lets `passes` mutating calls through, then stops every later one, as a lost lease does."""

    def __init__(self, passes: int) -> None:
        self.passes = passes
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, call: str) -> None:
        with self._lock:
            self.calls.append(call)
            if len(self.calls) > self.passes:
                raise LockError("lease 'ci1-small' was lost")


def test_the_guard_stops_every_mutating_call_once_it_refuses() -> None:
    github, cloud = FakeGithub(), FakeCloud()
    doomed = [cloud.add(f"ci1-small-00000000000{i}", "small", status="SHUTOFF", age=600) for i in range(3)]
    plan = Plan("small", 4, 0, 4, tuple(Deletion(vm.name, DeleteReason.FINISHED, vm.id, None) for vm in doomed))
    guard = LosingGuard(passes=4)  # the three deletions and one JIT registration
    result = PlanExecutor(github, cloud, "ci1", clock=lambda: NOW, guard=guard).execute(make_pool(), plan)
    # Exactly the calls the guard let through were made (a JIT record whose server the guard
    # refused is deleted again: that cleanup only undoes our own call).
    assert cloud.calls["delete_server"] + cloud.calls["create_server"] + github.calls["generate_jit_config"] == 4
    assert github.calls["delete_runner"] == github.calls["generate_jit_config"] - cloud.calls["create_server"] == 1
    assert github.runners[SCOPE] == {}
    assert all(vm.name not in result.created for vm in doomed)
    assert any("was lost" in e for e in result.errors)
    assert len(result.errors) == len(set(result.errors))


def test_every_mutating_call_passes_the_guard_first(clients: tuple[FakeGithub, FakeCloud, PlanExecutor]) -> None:
    github, cloud, _unused = clients
    runner = github.add(SCOPE, "ci1-small-aaaaaaaaaaaa")
    vm = cloud.add(runner.name, "small", runner_id=runner.id)
    guard = LosingGuard(passes=100)
    deletion = Deletion(runner.name, DeleteReason.SCALE_DOWN, vm.id, runner.id, scope=SCOPE)
    plan = Plan("small", 1, 0, 1, (deletion,))
    result = PlanExecutor(github, cloud, "ci1", clock=lambda: NOW, guard=guard).execute(make_pool(), plan)
    assert result.errors == []
    assert sorted(c.split(" ")[0:2] for c in guard.calls) == [
        ["create", "server"],
        ["delete", "runner"],
        ["delete", "server"],
        ["register", "runner"],
    ]
    assert len(guard.calls) == mutating_calls(github, cloud)
