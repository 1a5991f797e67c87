"""The simulated runner inside a VM: JIT config from the user data, one job, power-off; and its faults.

VMs are created with openstacksdk on the sandbox's OpenStack simulator, runners and jobs
are watched with PyGithub; the control API enqueues jobs and injects faults.
"""

from __future__ import annotations

import time
import typing as t

import github
import openstack
import openstack.config
import openstack.connection
import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import parse_pool
from ansible_collections.selfhosted.github_runners.plugins.module_utils._userdata import render_user_data
from tests.integration.sandbox.conftest_github import GithubWorld, unique, wait_for
from tests.sandbox.github.runner_vm import find_jit_config

if t.TYPE_CHECKING:
    from tests.integration.conftest import SandboxHandle

pytestmark = pytest.mark.sandbox

ORG = "octo-org"
ORG_SCOPE = f"/orgs/{ORG}"
REPO = "octo-org/infra"  # jobs of these tests; the org's runners serve it
CONTRACT_SCRIPT = """#!/bin/bash
# run.sh --jitconfig "${{NOT_THIS}}" is only a comment
GHR_JIT_CONFIG='{config}'
"${{RUNNER_DIR}}/run.sh" --jitconfig "${{GHR_JIT_CONFIG}}"
poweroff
"""
POOL = parse_pool(
    {"name": "p1", "organization": ORG, "labels": ["self-hosted"], "flavor": "m1.small",
     "image": "ubuntu-24.04-runner", "networks": ["runners-net"]}
)  # fmt: skip


# Reading the user data ------------------------------------------------------------------------------
def test_finds_the_config_in_the_contract_form() -> None:
    assert find_jit_config(CONTRACT_SCRIPT.format(config="QUJD")) == ("QUJD", None)


def test_finds_the_config_in_the_collections_own_script() -> None:
    config = "ZXlKaGJHY2lPaUpJVXpJMU5pSjk="
    assert find_jit_config(render_user_data(POOL, config)) == (config, None)


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("MY_CFG='abc'\n./run.sh --jitconfig \"$MY_CFG\"\n", ("abc", None)),
        ("export MY_CFG='abc'\nrun.sh --jitconfig=${MY_CFG}\n", ("abc", None)),
        ("X='old'\nX='new'\nrun.sh --jitconfig \"${X}\"\nX='after'\n", ("new", None)),
        ("run.sh --jitconfig \"${X}\"\nX='after'\n", (None, "no single-quoted assignment of X before run.sh")),
        ("X='abc'\n# run.sh --jitconfig \"${X}\"\n", (None, "no run.sh --jitconfig invocation")),
        ("#!/bin/bash\necho hello\n", (None, "no run.sh --jitconfig invocation")),
        (None, (None, "no user data")),
    ],
)
def test_parsing_edge_cases(script: str | None, expected: tuple[str | None, str | None]) -> None:
    assert find_jit_config(script) == expected


# VMs on the OpenStack simulator -------------------------------------------------------------------------
class Vms:
    """Runner VMs created with openstacksdk; deleted when the test ends."""

    def __init__(self, sandbox: SandboxHandle) -> None:
        config = openstack.config.OpenStackConfig(config_files=[sandbox.env["OS_CLIENT_CONFIG_FILE"]])
        self.conn = openstack.connection.Connection(config=config.get_one(cloud=sandbox.env["OS_CLOUD"]))
        self.ids: list[str] = []

    def boot(self, name: str, user_data: str) -> str:
        server = self.conn.create_server(
            name, image="ubuntu-24.04-runner", flavor="m1.small", network="runners-net", userdata=user_data, wait=False
        )
        self.ids.append(server.id)
        return str(server.id)

    def status(self, server_id: str) -> str:
        return str(self.conn.compute.get_server(server_id).status)

    def wait_status(self, server_id: str, status: str) -> None:
        wait_for(lambda: self.status(server_id) == status, what=f"server {status}")

    def delete(self, server_id: str) -> None:
        self.conn.delete_server(server_id, wait=False)

    def close(self) -> None:
        for server_id in self.ids:
            self.conn.delete_server(server_id, wait=False)
        self.conn.close()


@pytest.fixture()
def gw(sandbox: SandboxHandle) -> t.Iterator[GithubWorld]:
    world = GithubWorld(sandbox)
    yield world
    world.close()


@pytest.fixture()
def vms(sandbox: SandboxHandle) -> t.Iterator[Vms]:
    host = Vms(sandbox)
    yield host
    host.close()


def new_runner(gw: GithubWorld, labels: list[str]) -> tuple[str, int, str]:
    """An organization JIT runner named as the collection names them: (name, id, encoded config)."""
    data = gw.jit(ORG_SCOPE, labels, unique("it-p1"))
    return data["runner"]["name"], int(data["runner"]["id"]), data["encoded_jit_config"]


def runner(gw: GithubWorld, runner_id: int) -> dict[str, t.Any]:
    return gw.runner(ORG_SCOPE, runner_id)


# Life of a runner VM ---------------------------------------------------------------------------------------
def test_vm_runs_one_job_then_its_runner_is_removed_and_it_powers_off(gw: GithubWorld, vms: Vms) -> None:
    label = unique("vm")
    name, runner_id, config = new_runner(gw, ["self-hosted", label])
    server_id = vms.boot(name, render_user_data(POOL, config))
    gw.wait_online(ORG_SCOPE, runner_id)
    jobs = gw.enqueue(REPO, ["self-hosted", label], duration=0.1, count=2)["jobs"]
    vms.wait_status(server_id, "SHUTOFF")
    with pytest.raises(github.GithubException) as err:
        runner(gw, runner_id)
    assert err.value.status == 404
    # The VM took exactly one job (ephemeral); the other still waits for a runner.
    assert sorted(gw.job(j["id"])["status"] for j in jobs) == ["completed", "queued"]
    done = next(j for j in jobs if gw.job(j["id"])["status"] == "completed")
    job = gw.github().get_repo(REPO).get_workflow_job(done["id"])
    assert (job.conclusion, job.runner_name) == ("success", name)
    order = [
        e["type"]
        for e in gw.sandbox.events()
        if e.get("id") in (runner_id, server_id) or e.get("runner_id") == runner_id
    ]
    assert order.index("job_completed") < order.index("runner_delete") < order.index("server_power_off")
    vms.delete(server_id)
    wait_for(lambda: gw.events("server_delete", id=server_id), what="server deleted")
    assert [e["runner_busy"] for e in gw.events("server_delete", id=server_id)] == [None]  # runner already gone


def test_reused_config_is_rejected_and_the_vm_powers_off(gw: GithubWorld, vms: Vms) -> None:
    name, runner_id, config = new_runner(gw, ["self-hosted", unique("reuse")])
    vms.boot(name, CONTRACT_SCRIPT.format(config=config))
    gw.wait_online(ORG_SCOPE, runner_id)
    second = vms.boot(name + "-copy", CONTRACT_SCRIPT.format(config=config))
    vms.wait_status(second, "SHUTOFF")
    assert [e["reason"] for e in gw.events("runner_jit_rejected", server_id=second)] == ["already_used"]


def test_runner_never_online(gw: GithubWorld, vms: Vms) -> None:
    name, runner_id, config = new_runner(gw, ["self-hosted", unique("never")])
    gw.add_fault(kind="runner_never_online", match={"name": name})
    server_id = vms.boot(name, CONTRACT_SCRIPT.format(config=config))
    wait_for(lambda: gw.events("runner_never_online", name=name), what="fault fired")
    time.sleep(0.2)
    assert runner(gw, runner_id)["status"] == "offline"
    assert vms.status(server_id) == "ACTIVE"
    assert not gw.events("runner_online", id=runner_id)


def test_runner_offline_mid_job_is_lost(gw: GithubWorld, vms: Vms) -> None:
    label = unique("lost")
    name, runner_id, config = new_runner(gw, ["self-hosted", label])
    gw.add_fault(kind="runner_offline_mid_job", match={"name": name})
    gw.set_config(github__lost_job_timeout=0.6)
    server_id = vms.boot(name, CONTRACT_SCRIPT.format(config=config))
    job_id = gw.enqueue(REPO, ["self-hosted", label], duration=0.4)["jobs"][0]["id"]
    wait_for(lambda: gw.events("runner_offline", id=runner_id), what="runner offline")
    # GitHub still shows the job running and the runner busy, so it cannot be deleted.
    now = runner(gw, runner_id)
    assert (now["status"], now["busy"]) == ("offline", True)
    assert gw.job(job_id)["status"] == "in_progress"
    with pytest.raises(github.GithubException) as err:
        gw.github().requester.requestJsonAndCheck("DELETE", f"{ORG_SCOPE}/actions/runners/{runner_id}")
    assert err.value.status == 422
    wait_for(lambda: gw.job(job_id)["status"] == "completed", what="job given up")
    assert [e["conclusion"] for e in gw.events("job_completed", job_id=job_id)] == ["failure"]
    after = runner(gw, runner_id)  # not removed: lost
    assert (after["status"], after["busy"]) == ("offline", False)
    assert vms.status(server_id) == "ACTIVE"  # and the VM is not powered off


def test_idle_timeout_exits_the_runner(gw: GithubWorld, vms: Vms) -> None:
    gw.set_config(runner__idle_timeout=0.2)
    name, runner_id, config = new_runner(gw, ["self-hosted", unique("idle")])
    server_id = vms.boot(name, CONTRACT_SCRIPT.format(config=config))
    vms.wait_status(server_id, "SHUTOFF")
    assert [e["reason"] for e in gw.events("runner_offline", id=runner_id)] == ["idle_timeout"]
    assert runner(gw, runner_id)["status"] == "offline"  # the registration stays behind


def test_deleted_vm_leaves_an_offline_runner(gw: GithubWorld, vms: Vms) -> None:
    name, runner_id, config = new_runner(gw, ["self-hosted", unique("delvm")])
    server_id = vms.boot(name, CONTRACT_SCRIPT.format(config=config))
    gw.wait_online(ORG_SCOPE, runner_id)
    vms.delete(server_id)
    wait_for(lambda: runner(gw, runner_id)["status"] == "offline", what="runner offline")
    assert [e["reason"] for e in gw.events("runner_offline", id=runner_id)] == ["vm_deleted"]
    assert [e["runner_busy"] for e in gw.events("server_delete", id=server_id)] == [False]


def test_a_vm_is_judged_by_its_own_runner_not_by_another_of_the_same_name(gw: GithubWorld, vms: Vms) -> None:
    label, other_label = unique("own"), unique("namesake")
    name, runner_id, config = new_runner(gw, ["self-hosted", label])
    server_id = vms.boot(name, CONTRACT_SCRIPT.format(config=config))
    gw.wait_online(ORG_SCOPE, runner_id)
    gw.enqueue(REPO, ["self-hosted", label], duration=0.1)
    vms.wait_status(server_id, "SHUTOFF")  # its runner ran its job and is gone
    # A runner of the same name in another scope (a retry's), busy with a job of its own.
    namesake = gw.jit(f"/repos/{REPO}", ["self-hosted", other_label], name)
    gw.start_agent(namesake["encoded_jit_config"], name)
    job = gw.enqueue(REPO, ["self-hosted", other_label], duration=30)["jobs"][0]
    wait_for(lambda: gw.job(job["id"])["status"] == "in_progress", what="the namesake busy")
    vms.delete(server_id)
    wait_for(lambda: gw.events("server_delete", id=server_id), what="server deleted")
    assert [e["runner_busy"] for e in gw.events("server_delete", id=server_id)] == [None]


def test_runner_deleted_on_github_exits_and_powers_off(gw: GithubWorld, vms: Vms) -> None:
    name, runner_id, config = new_runner(gw, ["self-hosted", unique("scaledown")])
    server_id = vms.boot(name, CONTRACT_SCRIPT.format(config=config))
    gw.wait_online(ORG_SCOPE, runner_id)
    gw.github().get_organization(ORG).delete_self_hosted_runner(runner_id)
    vms.wait_status(server_id, "SHUTOFF")
    assert [e["reason"] for e in gw.events("runner_offline", id=runner_id)] == ["deleted"]


def test_vm_without_runner_script_is_skipped(gw: GithubWorld, vms: Vms) -> None:
    server_id = vms.boot(unique("plain"), "#!/bin/bash\necho hi\n")
    skipped = wait_for(lambda: gw.events("runner_agent_skipped", server_id=server_id), what="skipped")
    assert [e["reason"] for e in skipped] == ["no run.sh --jitconfig invocation"]
