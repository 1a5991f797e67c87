"""Drift: the spec hash recorded on each VM, outdated runners and their bounded replacement."""

from __future__ import annotations

import dataclasses
import datetime
import typing as t

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._backoff import (
    CreationBackoff,
    hold_creations,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._drift import SPEC_HASH_LENGTH, spec_hash
from ansible_collections.selfhosted.github_runners.plugins.module_utils._identity import (
    GHR_SPEC,
    parse_vm_metadata,
    vm_metadata,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import (
    DeleteReason,
    RunnerState,
    RunnerView,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._planner import (
    plan_pool,
    without_github_changes,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reconcile import ReconcileOptions
from ansible_collections.selfhosted.github_runners.plugins.module_utils._report import runner_info
from ansible_collections.selfhosted.github_runners.plugins.module_utils._state import derive_states
from tests.unit.plugins.module_utils.factories import NOW, SCOPE, TIMING, gh, pool, view, vm
from tests.unit.plugins.module_utils.fakes import FakeCloud, FakeGithub, MemoryLock
from tests.unit.plugins.module_utils.test_reconcile import bring_online, make_reconciler

OLD = "0123456789abcdef"


def setup_function() -> None:
    MemoryLock.states.clear()


def test_the_spec_hash_is_a_fixed_function_of_the_spec() -> None:
    # A literal: the hash must not change between runs, hosts or Python versions (no hash(), no repr()).
    assert spec_hash(pool()) == "18852bb289d4e456"
    assert len(spec_hash(pool())) == SPEC_HASH_LENGTH


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("name", "other"),
        ("repository", "octo/other"),
        ("min_idle", 3),
        ("max_runners", 50),
        ("max_create_per_run", 2),
        ("max_replace_per_run", 1),
        ("create_concurrency", 8),
        ("bootstrap_timeout", "20m"),
        ("offline_grace", "1m"),
        ("registration_grace", "5m"),
        ("max_lifetime", "2h"),
        ("creation_backoff", "5m"),
        ("creation_backoff_max", "2h"),
    ],
)
def test_sizes_timings_and_names_leave_the_hash_unchanged(key: str, value: t.Any) -> None:
    assert spec_hash(pool(**{key: value})) == spec_hash(pool())


@pytest.mark.parametrize(
    "overrides",
    [
        {"labels": ["self-hosted", "linux", "gpu"]},
        {"flavor": "m1.large"},
        {"image": "ubuntu-24.04"},
        {"networks": ["runners", "storage"]},
        {"security_groups": ["no-ingress"]},
        {"key_name": "ops"},
        {"runner_group": "ci"},
        {"availability_zone": "az2"},
        {"boot_from_volume": True, "volume_size": 40},
        {"user_data": {"extra_env": {"FOO": "1"}}},
        {"user_data": {"pre_job_script": "echo hi"}},
        {"user_data": {"http_proxy": "http://proxy:3128"}},
        {"user_data": {"runner_user": "ci"}},
        {"user_data": {"runner": {"directory": "/srv/runner"}}},
    ],
)
def test_every_field_that_shapes_a_runner_changes_the_hash(overrides: t.Dict[str, t.Any]) -> None:
    assert spec_hash(pool(**overrides)) != spec_hash(pool())


def test_label_and_security_group_order_do_not_matter_network_order_does() -> None:
    assert spec_hash(pool(labels=["linux", "self-hosted"])) == spec_hash(pool())
    two = {"security_groups": ["a", "b"]}
    assert spec_hash(pool(**two)) == spec_hash(pool(security_groups=["b", "a"]))
    assert spec_hash(pool(networks=["a", "b"])) != spec_hash(pool(networks=["b", "a"]))


def test_the_hash_goes_into_the_vm_metadata_and_back() -> None:
    metadata = vm_metadata(7, NOW, SCOPE, spec=spec_hash(pool()))
    assert metadata[GHR_SPEC] == spec_hash(pool())
    assert parse_vm_metadata(metadata).spec == spec_hash(pool())
    assert GHR_SPEC not in vm_metadata(7, NOW, SCOPE)
    for bad in ("", "XYZ", "12", 12, None, "g" * 16):
        assert parse_vm_metadata({**metadata, GHR_SPEC: bad}).spec is None
    with pytest.raises(ValueError):
        vm_metadata(7, NOW, SCOPE, spec="not hex")


def test_a_vm_of_another_spec_is_outdated_one_without_a_hash_is_not() -> None:
    current = spec_hash(pool())
    vms = [
        dataclasses.replace(vm("ci1-small-00000000000a"), spec=OLD),
        dataclasses.replace(vm("ci1-small-00000000000b"), spec=current),
        vm("ci1-small-00000000000c"),  # created before the hash was recorded: unknown
        dataclasses.replace(vm("ci1-small-00000000000d"), spec=OLD),
    ]
    runners = [gh(v.name, online=True, busy=v.name.endswith("d")) for v in vms]
    views = derive_states(vms, runners, NOW, TIMING, scope=SCOPE, spec=current)
    assert {v.name[-1]: v.outdated for v in views} == {"a": True, "b": False, "c": False, "d": True}
    assert views[3].state is RunnerState.BUSY  # still busy: outdated is a mark, not a state
    assert not any(v.outdated for v in derive_states(vms, runners, NOW, TIMING, scope=SCOPE))


def outdated(name: str, state: RunnerState = RunnerState.IDLE, age: float = 60.0) -> RunnerView:
    return dataclasses.replace(view(name, state, age=age), outdated=True)


def test_idle_outdated_runners_are_replaced_at_most_max_replace_per_run_busy_ones_never() -> None:
    spec = pool(min_idle=4, max_runners=10, max_replace_per_run=2)
    views = [outdated(f"ci1-small-00000000000{i}", age=60.0 + i) for i in range(4)]
    views.append(outdated("ci1-small-0000000000bb", RunnerState.BUSY))
    plan = plan_pool(spec, views)
    replaced = [d for d in plan.delete if d.reason is DeleteReason.OUTDATED]
    # The oldest first, and as many new ones as replaced.
    assert {d.name for d in replaced} == {"ci1-small-000000000003", "ci1-small-000000000002"}
    assert plan.create == 2 and plan.alive == 3
    assert "ci1-small-0000000000bb" not in {d.name for d in plan.delete}
    assert len(plan.outdated) == 5
    assert plan_pool(spec, views, mode="flushed").delete  # flushed replaces them all, as before
    assert not plan_pool(dataclasses.replace(spec, max_replace_per_run=0), views).delete


def test_replacements_stay_within_max_create_per_run_so_the_pool_never_shrinks() -> None:
    spec = pool(min_idle=5, max_runners=10, max_create_per_run=3, max_replace_per_run=5)
    views = [outdated(f"ci1-small-00000000000{i}") for i in range(3)]  # 2 short of min_idle
    plan = plan_pool(spec, views)
    assert [d.reason for d in plan.delete] == [DeleteReason.OUTDATED]  # one slot left after the 2 missing
    assert plan.create == 3 and plan.limited == 0


def test_scale_down_takes_outdated_runners_first() -> None:
    spec = pool(min_idle=1, max_runners=5)
    views = [view("ci1-small-00000000000a", RunnerState.IDLE, age=900.0), outdated("ci1-small-00000000000b")]
    plan = plan_pool(spec, views)
    assert [(d.name, d.reason) for d in plan.delete] == [("ci1-small-00000000000b", DeleteReason.SCALE_DOWN)]
    assert plan.create == 0


def test_no_replacement_while_creations_back_off_or_github_holds_changes() -> None:
    spec = pool(min_idle=2, max_runners=5)
    plan = plan_pool(spec, [outdated("ci1-small-00000000000a"), outdated("ci1-small-00000000000b")])
    assert plan.create == 2 and len(plan.delete) == 2
    held = hold_creations(plan, CreationBackoff(until=NOW + datetime.timedelta(minutes=1)), NOW)
    assert (held.create, held.delete, held.held) == (0, (), 0)
    assert without_github_changes(plan).delete == () and without_github_changes(plan).held == 0


def test_a_changed_pool_rolls_its_idle_runners_over_and_leaves_busy_ones() -> None:
    github, cloud, held = FakeGithub(), FakeCloud(), []
    before = pool(min_idle=2, max_runners=5)
    make_reconciler(github, cloud, held).run([before], ReconcileOptions("ci1"))
    bring_online(github)
    first = next(iter(github.runners[SCOPE].values()))
    github.runners[SCOPE][first.id] = dataclasses.replace(first, busy=True)
    refill = make_reconciler(github, cloud, held).run([before], ReconcileOptions("ci1"))
    assert len(refill.pools[0].execution.created) == 1  # busy 1 + idle 2
    bring_online(github)
    assert {vm.spec for vm in cloud.servers.values()} == {spec_hash(before)}

    after = pool(min_idle=2, max_runners=5, labels=["self-hosted", "linux", "new"])
    checked = make_reconciler(github, cloud, held).run([after], ReconcileOptions("ci1", check_mode=True))
    assert checked.pools[0].as_dict()["plan"]["outdated"] == 3
    assert sorted(checked.diff()["before"]["small"].values()) == [
        "busy (outdated)",
        "idle (outdated)",
        "idle (outdated)",
    ]
    report = make_reconciler(github, cloud, held).run([after], ReconcileOptions("ci1"))
    result = report.pools[0].as_dict()
    assert len(result["deleted"]["outdated"]) == 2 and len(result["created"]) == 2
    assert first.name in result["outdated"] and first.name not in result["deleted"]["outdated"]
    assert "outdated (an older pool spec): 3" in result["summary"]
    assert any(vm.name == first.name for vm in cloud.servers.values())  # the busy one is left alone
    new = [vm for vm in cloud.servers.values() if vm.name in result["created"]]
    assert {vm.spec for vm in new} == {spec_hash(after)}
    labels = {r.name: r.labels for r in github.runners[SCOPE].values()}
    assert all("new" in labels[vm.name] for vm in new)
    bring_online(github)
    steady = make_reconciler(github, cloud, held).run([after], ReconcileOptions("ci1"))
    assert not steady.changed and steady.pools[0].plan.outdated == (first.name,)


def test_runner_info_shows_labels_creation_time_spec_and_whether_outdated() -> None:
    current = spec_hash(pool())
    runner = dataclasses.replace(gh("ci1-small-00000000000a", online=True), labels=("self-hosted", "old"))
    machine = dataclasses.replace(
        vm("ci1-small-00000000000a", age=60.0), spec=OLD, flavor="m1.small", image="img-1", job_id=77
    )
    info = runner_info(derive_states([machine], [runner], NOW, TIMING, scope=SCOPE, spec=current)[0])
    assert info["labels"] == ["self-hosted", "old"]
    assert (info["flavor"], info["image"], info["job_id"]) == ("m1.small", "img-1", 77)
    assert info["created_at"] == "2024-05-01T11:59:00Z"
    assert (info["spec"], info["outdated"], info["state"]) == (OLD, True, "idle")
