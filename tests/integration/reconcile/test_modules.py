"""The modules run by ansible-playbook against the sandbox: idempotency, check mode, diff, secrets."""

from __future__ import annotations

import pathlib
import typing as t

from tests.integration.reconcile.conftest import Ansible, Core, mutating, pool_dict


def pool_args(sandbox: t.Any, pool: dict[str, t.Any], **extra: t.Any) -> dict[str, t.Any]:
    return {"controller_id": "it", "pools": [pool], **extra}


def test_pool_created_then_idempotent(sandbox: t.Any, ansible: Ansible, core: Core) -> None:
    pool = pool_dict(sandbox, min_idle=3)
    first = ansible.run("github_runner_pool", pool_args(sandbox, pool, wait=True, wait_timeout=60)).result
    assert first["changed"] is True
    assert len(first["pools"][0]["created"]) == 3
    assert first["idle"] == {pool["name"]: 3}  # wait: the module returned once they were online

    sandbox.reset_counters()
    second = ansible.run("github_runner_pool", pool_args(sandbox, pool)).result
    assert second["changed"] is False
    assert second["pools"][0]["states"]["idle"] == 3
    assert mutating(sandbox.counters()) == []
    ansible.run("github_runner_pool", pool_args(sandbox, pool, state="absent"))


def test_check_mode_predicts_the_real_run_and_mutates_nothing(sandbox: t.Any, ansible: Ansible) -> None:
    pool = pool_dict(sandbox, min_idle=2)
    sandbox.reset_counters()
    checked = ansible.run("github_runner_pool", pool_args(sandbox, pool), check=True, diff=True)
    assert mutating(sandbox.counters()) == []
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
    pool = pool_dict(sandbox, min_idle=4, max_runners=2)
    run = ansible.run("github_runner_pool", pool_args(sandbox, pool), expect_failure=True)
    assert run.result["failed"] is True
    assert "pools[0]" in run.result["msg"]
    assert "min_idle" in run.result["msg"] or "max_runners" in run.result["msg"]


def test_no_secret_in_results_or_verbose_output(sandbox: t.Any, ansible: Ansible, core: Core) -> None:
    pool = pool_dict(sandbox, min_idle=1)
    run = ansible.run("github_runner_pool", pool_args(sandbox, pool), verbosity=3, diff=True)
    info = ansible.run("github_runner_pool_info", pool_args(sandbox, pool), verbosity=3)
    secrets = [sandbox.env["GITHUB_TOKEN"], *sandbox.control.get("/jit-configs")["jit_configs"]]
    assert len(secrets) >= 2
    text = run.output + info.output + repr(run.result) + repr(info.result)
    for secret in secrets:
        assert secret not in text
    ansible.run("github_runner_pool", pool_args(sandbox, pool, state="absent", force=True))


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


def test_pool_info_shows_joined_view(sandbox: t.Any, ansible: Ansible, core: Core) -> None:
    pool = pool_dict(sandbox, min_idle=2)
    ansible.run("github_runner_pool", pool_args(sandbox, pool))
    core.wait_idle(pool["name"], 2)
    sandbox.reset_counters()
    info = ansible.run("github_runner_pool_info", pool_args(sandbox, pool)).result
    assert info["changed"] is False
    assert mutating(sandbox.counters()) == []
    runners = info["pools"][0]["runners"]
    assert [r["state"] for r in runners] == ["idle", "idle"]
    assert all(r["vm_status"] == "ACTIVE" and r["github_status"] == "online" for r in runners)
    ansible.run("github_runner_pool", pool_args(sandbox, pool, state="absent"))


def test_runner_vm_present_and_absent_are_idempotent(sandbox: t.Any, ansible: Ansible, core: Core) -> None:
    pool = pool_dict(sandbox)
    name = f"it-{pool['name']}-00000000beef"
    args = {"controller_id": "it", "name": name, "pool": pool}
    sandbox.reset_counters()
    checked = ansible.run("openstack_runner_vm", args, check=True, diff=True).result
    assert checked["changed"] is True
    assert mutating(sandbox.counters()) == []
    assert core.servers(pool["name"]) == []
    assert ansible.run("openstack_runner_vm", args).result["changed"] is True
    assert ansible.run("openstack_runner_vm", args).result["changed"] is False
    assert [s["name"] for s in core.servers(pool["name"])] == [name]
    absent = {**args, "state": "absent"}
    assert ansible.run("openstack_runner_vm", absent).result["changed"] is True
    assert ansible.run("openstack_runner_vm", absent).result["changed"] is False
    assert core.servers(pool["name"]) == []
    assert core.runners(pool["name"]) == []


def test_runner_vm_respects_max_runners(sandbox: t.Any, ansible: Ansible, core: Core) -> None:
    pool = pool_dict(sandbox, max_runners=1)
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
