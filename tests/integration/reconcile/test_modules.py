"""The modules run by ansible-playbook: idempotency, check mode, diff, secrets.

Scenarios on `both_backends` run against the sandbox and against real Nova.
"""

from __future__ import annotations

import json
import pathlib
import typing as t

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._drift import spec_hash
from ansible_collections.selfhosted.github_runners.plugins.module_utils._identity import (
    controller_tag,
    pool_tag,
    runner_name,
    vm_metadata,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._manager import utcnow
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reconcile import ReconcileOptions
from ansible_collections.selfhosted.github_runners.plugins.module_utils._userdata import render_user_data
from tests.integration.conftest import Backend, both_backends
from tests.integration.reconcile.conftest import Ansible, Core, mutating, pool_dict


def pool_args(sandbox: t.Any, pool: dict[str, t.Any], **extra: t.Any) -> dict[str, t.Any]:
    return {"controller_id": "it", "pools": [pool], **extra}


@both_backends
def test_pool_created_then_idempotent(sandbox: t.Any, backend: Backend, ansible: Ansible, core: Core) -> None:
    pool = pool_dict(backend, min_idle=3)
    first = ansible.run("github_runner_pool", pool_args(sandbox, pool, wait=True, wait_timeout=60)).result
    assert first["changed"] is True
    assert len(first["pools"][0]["created"]) == 3
    assert first["idle"] == {pool["name"]: 3}  # wait: the module returned once they were online

    backend.reset_counters()
    second = ansible.run("github_runner_pool", pool_args(sandbox, pool)).result
    assert second["changed"] is False
    assert second["pools"][0]["states"]["idle"] == 3
    assert mutating(backend.counters()) == []
    ansible.run("github_runner_pool", pool_args(sandbox, pool, state="absent"))


@both_backends
def test_check_mode_predicts_the_real_run_and_mutates_nothing(
    sandbox: t.Any, backend: Backend, ansible: Ansible
) -> None:
    pool = pool_dict(backend, min_idle=2)
    backend.reset_counters()
    checked = ansible.run("github_runner_pool", pool_args(sandbox, pool), check=True, diff=True)
    assert mutating(backend.counters()) == []
    assert checked.result["changed"] is True
    plan = checked.result["pools"][0]["plan"]
    assert plan["create"] == 2
    assert checked.result["diff"]["before"] == {pool["name"]: {}}
    assert sorted(checked.result["diff"]["after"][pool["name"]]) == ["(new runner 1)", "(new runner 2)"]

    real = ansible.run("github_runner_pool", pool_args(sandbox, pool)).result
    assert real["pools"][0]["plan"] == plan
    assert len(real["pools"][0]["created"]) == plan["create"]
    ansible.run("github_runner_pool", pool_args(sandbox, pool, state="absent", force=True))


def test_invalid_pool_names_the_field(sandbox: t.Any, ansible: Ansible) -> None:
    pool = pool_dict(sandbox, min_idle=4, max_runners=10**12)
    run = ansible.run("github_runner_pool", pool_args(sandbox, pool), expect_failure=True)
    assert run.result["failed"] is True
    assert "pools[0].max_runners" in run.result["msg"] and "1000" in run.result["msg"]


@both_backends
def test_no_secret_in_results_or_verbose_output(sandbox: t.Any, backend: Backend, ansible: Ansible, core: Core) -> None:
    """With admin credentials every listing carries each server's user data, i.e. its JIT config."""
    pool = pool_dict(backend, min_idle=2)
    admin = {"cloud": backend.admin_cloud}
    log = ansible.workdir / "ansible.log"
    runs = [ansible.run("github_runner_pool", pool_args(sandbox, pool, **admin), verbosity=3, diff=True, log=log)]
    core.wait_idle(pool["name"], 2)
    user_data = [s["OS-EXT-SRV-ATTR:user_data"] for s in backend.admin_servers(f"ghr-pool={pool['name']}")]
    assert len(user_data) == 2 and all(user_data)
    runs.append(ansible.run("github_runner_pool_info", pool_args(sandbox, pool, **admin), verbosity=3, log=log))
    runs.append(ansible.run("github_runner_pool", pool_args(sandbox, pool, **admin), verbosity=3, diff=True, log=log))
    absent = pool_args(sandbox, pool, state="absent", force=True, **admin)
    runs.append(ansible.run("github_runner_pool", absent, verbosity=3, diff=True, check=True, log=log))
    runs.append(ansible.run("github_runner_pool", absent, verbosity=3, diff=True, log=log))
    jit_configs = sandbox.control.get("/jit-configs")["jit_configs"]
    assert len(jit_configs) >= 2
    text = "".join(r.output + json.dumps(r.result) for r in runs) + log.read_text()
    assert "OS-EXT-SRV-ATTR" not in text
    for secret in [sandbox.env["GITHUB_TOKEN"], *jit_configs]:
        assert secret not in text
    for encoded in user_data:
        assert encoded[:64] not in text and encoded[-64:] not in text
    # The admin listing did carry the user data: the run reports it in its listing bytes.
    assert runs[2].result["api_calls"]["openstack_list_bytes"] > sum(len(u) for u in user_data)


@both_backends
def test_admin_listings_carry_the_user_data_in_their_bytes(backend: Backend, core: Core) -> None:
    """The listing's bytes, as the results report them, with member and with admin credentials."""
    pool = pool_dict(backend, min_idle=3)
    core.reconcile([pool])
    core.wait_idle(pool["name"], 3)
    member = core.reconcile([pool])
    admin = core.reconciler(cloud=backend.admin_cloud).run([core.spec(pool)], ReconcileOptions(core.controller_id))
    assert not member.changed and not admin.changed
    user_data = sum(len(s["OS-EXT-SRV-ATTR:user_data"]) for s in backend.admin_servers(f"ghr-pool={pool['name']}"))
    assert user_data > 0
    # Other tests' servers may be listed too (the controller's tag): at least the pool's user data more.
    assert admin.api_calls["openstack_list_bytes"] >= member.api_calls["openstack_list_bytes"] + user_data
    core.reconcile([pool], mode="absent", force=True)


def test_app_auth_from_environment(sandbox: t.Any, ansible: Ansible) -> None:
    pool = pool_dict(sandbox, min_idle=1)
    args = {
        **pool_args(sandbox, pool),
        "github_token": None,
        "github_app_id": sandbox.env["GITHUB_APP_ID"],
        "github_app_private_key_path": sandbox.env["GITHUB_APP_PRIVATE_KEY_FILE"],
        "github_app_installation_id": int(sandbox.env["GITHUB_APP_INSTALLATION_ID"]),
    }
    args.pop("github_token")
    run = ansible.run("github_runner_pool", args, verbosity=3)
    assert len(run.result["pools"][0]["created"]) == 1
    key_lines = pathlib.Path(sandbox.env["GITHUB_APP_PRIVATE_KEY_FILE"]).read_text().splitlines()[1:-1]
    assert key_lines
    assert not any(line in run.output for line in key_lines)
    ansible.run("github_runner_pool", {**args, "state": "absent", "force": True})


@both_backends
def test_pool_info_shows_joined_view(sandbox: t.Any, backend: Backend, ansible: Ansible, core: Core) -> None:
    pool = pool_dict(backend, min_idle=2, networks=["auto"])
    ansible.run("github_runner_pool", pool_args(sandbox, pool))
    core.wait_idle(pool["name"], 2)
    backend.reset_counters()
    info = ansible.run("github_runner_pool_info", pool_args(sandbox, pool)).result
    assert info["changed"] is False
    assert mutating(backend.counters()) == []
    runners = info["pools"][0]["runners"]
    assert [r["state"] for r in runners] == ["idle", "idle"]
    assert all(r["vm_status"] == "ACTIVE" and r["github_status"] == "online" for r in runners)
    ansible.run("github_runner_pool", pool_args(sandbox, pool, state="absent"))


def test_pool_info_shows_the_flavor_image_and_job_of_each_runner(sandbox: t.Any, ansible: Ansible, core: Core) -> None:
    pool = pool_dict(sandbox, min_idle=1)
    ansible.run("github_runner_pool", pool_args(sandbox, pool))
    # A runner created for one job, as the reactive path creates them: its VM records the job.
    spec, github, cloud = core.spec(pool), core.github(), core.cloud()
    name = runner_name("it", spec.name)
    runner, jit_config = github.generate_jit_config(
        spec.scope, name, spec.labels, github.runner_group_id(spec.scope, None)
    )
    metadata = vm_metadata(runner.id, utcnow(), spec.scope, job_id=4242, spec=spec_hash(spec))
    tags = [controller_tag("it"), pool_tag(spec.name)]
    cloud.create_server(name, spec, render_user_data(spec, jit_config), metadata, tags)
    info = ansible.run("github_runner_pool_info", pool_args(sandbox, pool)).result
    servers = {s["name"]: s for s in core.servers(pool["name"])}
    runners = {r["name"]: r for r in info["pools"][0]["runners"]}
    assert len(runners) == 2 and set(runners) == set(servers)
    for runner_name_, shown in runners.items():
        assert shown["flavor"] == pool["flavor"] == servers[runner_name_]["flavor"]
        assert shown["image"] == servers[runner_name_]["image_id"] and shown["image"]
        assert shown["job_id"] == (4242 if runner_name_ == name else None)
    ansible.run("github_runner_pool", pool_args(sandbox, pool, state="absent", force=True))


@both_backends
def test_runner_vm_present_and_absent_are_idempotent(backend: Backend, ansible: Ansible, core: Core) -> None:
    pool = pool_dict(backend, networks=["none"], security_groups=[])
    name = f"it-{pool['name']}-00000000beef"
    args = {"controller_id": "it", "name": name, "pool": pool}
    backend.reset_counters()
    checked = ansible.run("openstack_runner_vm", args, check=True, diff=True).result
    assert checked["changed"] is True
    assert mutating(backend.counters()) == []
    assert core.servers(pool["name"]) == []
    assert ansible.run("openstack_runner_vm", args).result["changed"] is True
    assert ansible.run("openstack_runner_vm", args).result["changed"] is False
    assert [s["name"] for s in core.servers(pool["name"])] == [name]
    absent = {**args, "state": "absent"}
    assert ansible.run("openstack_runner_vm", absent).result["changed"] is True
    assert ansible.run("openstack_runner_vm", absent).result["changed"] is False
    assert core.servers(pool["name"]) == []
    assert core.runners(pool["name"]) == []


@both_backends
def test_runner_vm_respects_max_runners(backend: Backend, ansible: Ansible, core: Core) -> None:
    pool = pool_dict(backend, max_runners=1)
    first = {"controller_id": "it", "name": f"it-{pool['name']}-00000000aaaa", "pool": pool}
    second = {**first, "name": f"it-{pool['name']}-00000000bbbb"}
    assert ansible.run("openstack_runner_vm", first).result["changed"] is True
    refused = ansible.run("openstack_runner_vm", second, expect_failure=True).result
    assert "max_runners" in refused["msg"]
    assert [s["name"] for s in core.servers(pool["name"])] == [first["name"]]
    ansible.run("openstack_runner_vm", {**first, "state": "absent", "force": True})


def test_runner_vm_rejects_a_name_the_pool_would_not_own(sandbox: t.Any, ansible: Ansible) -> None:
    pool = pool_dict(sandbox)
    run = ansible.run(
        "openstack_runner_vm", {"controller_id": "it", "name": "someone-else", "pool": pool}, expect_failure=True
    )
    assert "name" in run.result["msg"]


@pytest.mark.sandbox_only("openstack.cloud's server_info looks images and networks up in Glance and Neutron")
def test_openstack_cloud_server_info_lists_runner_vms(sandbox: t.Any, ansible: Ansible) -> None:
    pool = pool_dict(sandbox, min_idle=2)
    ansible.run("github_runner_pool", pool_args(sandbox, pool))
    playbook_module = "openstack.cloud.server_info"
    result = ansible.run_fqcn(playbook_module, {"name": f"it-{pool['name']}-*"}).result
    servers = result["servers"]
    assert len(servers) == 2
    for server in servers:
        assert server["name"].startswith(f"it-{pool['name']}-")
        assert {"ghr-controller=it", f"ghr-pool={pool['name']}"} <= set(server["tags"])
        assert server["metadata"]["ghr_runner_id"].isdigit()
    ansible.run("github_runner_pool", pool_args(sandbox, pool, state="absent", force=True))
