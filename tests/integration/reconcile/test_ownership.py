"""What is ours, through the modules against the sandbox: recorded scopes, foreign names, unlisted pools."""

from __future__ import annotations

import time
import typing as t
import uuid

import pytest

from tests.integration.reconcile.conftest import Ansible, Core, pool_dict

RUNNER_LISTING = "/repos/{owner}/{repo}/actions/runners"
# Long enough to span several reconciles; jobs end by themselves (no busy runner is killed here).
JOB_SECONDS = 40.0


def pool_args(controller_id: str, *pools: dict[str, t.Any], **extra: t.Any) -> dict[str, t.Any]:
    return {"controller_id": controller_id, "pools": list(pools), **extra}


def last_event(sandbox: t.Any) -> int:
    events = sandbox.events()
    return int(events[-1]["seq"]) if events else 0


def killed(sandbox: t.Any, since: int) -> list[dict[str, t.Any]]:
    """The sandbox's own log, since event `since`: VMs deleted under a busy runner, busy runners deleted."""
    vms = [e for e in sandbox.events("server_delete", since) if e.get("runner_busy")]
    runners = [e for e in sandbox.events("runner_delete", since) if e.get("busy_at_delete")]
    return vms + runners


def queue_long_job(sandbox: t.Any, label: str, seconds: float = JOB_SECONDS) -> None:
    repo = sandbox.env["GITHUB_REPOSITORY"]
    sandbox.control.post("/jobs", {"repository": repo, "labels": ["self-hosted", label], "duration": seconds})


def busy_runners(core: Core, pool: str) -> list[dict[str, t.Any]]:
    return [r for r in core.runners(pool) if r["busy"]]


def server_metadata(core: Core, server_id: str) -> dict[str, str]:
    return next(s for s in core.sandbox.state()["openstack"]["servers"] if s["id"] == server_id)["metadata"]


@pytest.fixture
def stray_servers(core: Core) -> t.Iterator[t.Callable[[str, list[str]], str]]:
    """Servers made with openstacksdk outside the collection (deleted at the end)."""
    cloud = core.cloud()
    made: list[str] = []

    def create(name: str, tags: list[str]) -> str:
        server = cloud.conn.compute.create_server(
            name=name,
            flavor_id=cloud.conn.compute.find_flavor("m1.small").id,
            image_id=cloud.conn.image.find_image("ubuntu-24.04-runner").id,
            networks=[{"uuid": cloud.conn.network.find_network("runners-net").id}],
            tags=tags,
            metadata={"ghr_runner_id": "1"},
        )
        made.append(server.id)
        return str(server.id)

    yield create
    for server_id in made:
        cloud.delete_server(server_id)
    cloud.close()


def test_busy_repository_runner_survives_its_pool_moving_to_organization_scope(
    sandbox: t.Any, ansible: Ansible, core: Core
) -> None:
    since = last_event(sandbox)
    repo_scope = f"repository:{sandbox.env['GITHUB_REPOSITORY']}"
    label = f"scope{uuid.uuid4().hex[:6]}"
    pool = pool_dict(sandbox, labels=["self-hosted", label], min_idle=1, max_runners=3)
    ansible.run("github_runner_pool", pool_args("it", pool))
    core.wait_idle(pool["name"], 1)
    [server] = core.servers(pool["name"])
    assert server_metadata(core, server["id"])["ghr_scope"] == repo_scope
    queue_long_job(sandbox, label)
    core.wait_for("the runner busy", lambda: len(busy_runners(core, pool["name"])) == 1)
    [busy] = busy_runners(core, pool["name"])

    moved = pool | {"repository": None, "organization": sandbox.env["GITHUB_ORG"]}
    info = ansible.run("github_runner_pool_info", pool_args("it", moved)).result
    [seen] = [r for r in info["pools"][0]["runners"] if r["name"] == busy["name"]]
    assert (seen["state"], seen["scope"]) == ("busy", repo_scope)
    reports = []
    for _round in range(3):  # past registration_grace: the organization listing never shows the runner
        reports.append(ansible.run("github_runner_pool", pool_args("it", moved)).result["pools"][0])
        time.sleep(1.0)
    assert killed(sandbox, since) == []  # its VM lived while the runner was busy
    assert reports[0]["scope_changed"] == [busy["name"]]

    # Once its job is done, the VM powers off and goes, its runner asked about in the repository.
    def old_vm_deleted() -> bool:
        ansible.run("github_runner_pool", pool_args("it", moved))
        return server["id"] not in {s["id"] for s in core.servers(pool["name"])}

    core.wait_for("the old scope's VM deleted after its job", old_vm_deleted, timeout=JOB_SECONDS * 3)
    ansible.run("github_runner_pool", pool_args("it", moved, state="absent"))
    core.wait_for("pool empty", lambda: core.servers(pool["name"]) == [] and core.runners(pool["name"]) == [])
    assert killed(sandbox, since) == []


def test_tagged_vm_with_a_foreign_name_survives_every_mode(
    sandbox: t.Any, ansible: Ansible, core: Core, stray_servers: t.Callable[[str, list[str]], str]
) -> None:
    controller = "stray"  # a controller of its own: prune must not see other tests' pools
    # A label of its own: no job takes its runner, so forcing kills nothing.
    pool = pool_dict(sandbox, labels=["self-hosted", f"stray{uuid.uuid4().hex[:6]}"], min_idle=1)
    ours = [f"ghr-controller={controller}", f"ghr-pool={pool['name']}"]
    strays = {
        stray_servers("stray-vm-with-our-tags", ours),
        # Tagged for a pool that is not configured: neither counted as unmanaged nor pruned.
        stray_servers("stray-vm-of-no-listed-pool", [f"ghr-controller={controller}", "ghr-pool=gone"]),
    }
    core.wait_for("strays active", lambda: all(s["status"] == "ACTIVE" for s in _servers(core, strays)))
    cloud = core.cloud()
    for server_id in strays:  # powered off, as a finished runner's VM would be
        cloud.conn.compute.stop_server(server_id)
    core.wait_for("strays off", lambda: all(s["status"] == "SHUTOFF" for s in _servers(core, strays)))
    cloud.close()

    for extra in (
        {},
        {"state": "flushed", "force": True},
        {"state": "absent", "force": True, "prune_unlisted_pools": True},
    ):
        result = ansible.run("github_runner_pool", pool_args(controller, pool, **extra)).result
        assert len(_servers(core, strays)) == 2, extra
        assert [p["name"] for p in result["pools"]] == [pool["name"]]
        assert result["unmanaged"] == {}
    info = ansible.run("github_runner_pool_info", pool_args(controller, pool)).result
    assert info["unmanaged"] == {} and info["pools"][0]["runners"] == []
    vm = {"controller_id": controller, "name": f"{controller}-{pool['name']}-00000000abcd", "pool": pool}
    ansible.run("openstack_runner_vm", vm)
    ansible.run("openstack_runner_vm", vm | {"state": "absent", "force": True})
    assert len(_servers(core, strays)) == 2
    assert not [e for e in sandbox.events("server_delete") if e.get("id") in strays]


def _servers(core: Core, ids: set[str]) -> list[dict[str, t.Any]]:
    return [s for s in core.sandbox.state()["openstack"]["servers"] if s["id"] in ids and s["status"] != "DELETED"]


def test_runner_vm_absent_asks_github_when_the_listing_misses_the_runner(
    sandbox: t.Any, ansible: Ansible, core: Core
) -> None:
    since = last_event(sandbox)
    label = f"vmabs{uuid.uuid4().hex[:6]}"
    pool = pool_dict(sandbox, labels=["self-hosted", label])
    name = f"it-{pool['name']}-00000000cafe"
    args = {"controller_id": "it", "name": name, "pool": pool}
    ansible.run("openstack_runner_vm", args)
    core.wait_idle(pool["name"], 1)
    queue_long_job(sandbox, label)
    core.wait_for("the runner busy", lambda: len(busy_runners(core, pool["name"])) == 1)

    # The runner listing misses the runner once (as while pages shift under concurrent changes).
    sandbox.add_fault(
        kind="status",
        service="github",
        method="GET",
        route=RUNNER_LISTING,
        status=200,
        body={"total_count": 0, "runners": []},
        count=1,
    )
    refused = ansible.run("openstack_runner_vm", args | {"state": "absent"}, expect_failure=True).result
    assert [s["name"] for s in core.servers(pool["name"])] == [name]
    assert killed(sandbox, since) == []
    assert "still registered on GitHub" in refused["msg"]
    # Listed again, the busy runner keeps its VM without force.
    busy = ansible.run("openstack_runner_vm", args | {"state": "absent"}, expect_failure=True).result
    assert "running a job" in busy["msg"]
    assert [s["name"] for s in core.servers(pool["name"])] == [name]
    assert killed(sandbox, since) == []

    core.wait_for("the job done", lambda: busy_runners(core, pool["name"]) == [], timeout=JOB_SECONDS * 3)
    ansible.run("openstack_runner_vm", args | {"state": "absent"})
    core.wait_for("pool empty", lambda: core.servers(pool["name"]) == [] and core.runners(pool["name"]) == [])
    assert killed(sandbox, since) == []


def test_pools_no_longer_listed_are_reported_then_pruned_with_busy_ones_deferred(
    sandbox: t.Any, ansible: Ansible, core: Core
) -> None:
    controller = "prune"  # a controller of its own: other tests' pools are not unlisted pools here
    core.controller_id = controller
    since = last_event(sandbox)
    label = f"prune{uuid.uuid4().hex[:6]}"
    removed = pool_dict(sandbox, labels=["self-hosted", label], min_idle=2)
    kept = pool_dict(sandbox, min_idle=0)
    ansible.run("github_runner_pool", pool_args(controller, removed))
    core.wait_idle(removed["name"], 2)

    reported = ansible.run("github_runner_pool", pool_args(controller, kept))
    assert reported.result["unmanaged"] == {removed["name"]: 2}
    assert [p["name"] for p in reported.result["pools"]] == [kept["name"]]
    assert any(removed["name"] in w for w in reported.result.get("warnings", []))
    assert len(core.servers(removed["name"])) == 2
    info = ansible.run("github_runner_pool_info", pool_args(controller, kept)).result
    assert info["unmanaged"] == {removed["name"]: 2}

    checked = ansible.run("github_runner_pool", pool_args(controller, kept, prune_unlisted_pools=True), check=True)
    assert checked.result["changed"] is True and len(core.servers(removed["name"])) == 2

    queue_long_job(sandbox, label)
    core.wait_for("one runner busy", lambda: len(busy_runners(core, removed["name"])) == 1)
    [busy] = busy_runners(core, removed["name"])

    pruned = ansible.run("github_runner_pool", pool_args(controller, kept, prune_unlisted_pools=True)).result
    report = pruned["pools"][1]
    assert (report["name"], report["unlisted"]) == (removed["name"], True)
    assert report["plan"]["deferred"] == [busy["name"]]
    assert sum(len(names) for names in report["deleted"].values()) == 1
    assert [s["name"] for s in core.servers(removed["name"])] == [busy["name"]]
    assert killed(sandbox, since) == []

    def removed_pool_emptied() -> bool:
        ansible.run("github_runner_pool", pool_args(controller, kept, prune_unlisted_pools=True))
        return core.servers(removed["name"]) == [] and core.runners(removed["name"]) == []

    core.wait_for("the removed pool emptied after its job", removed_pool_emptied, timeout=JOB_SECONDS * 3)
    assert killed(sandbox, since) == []
    after = ansible.run("github_runner_pool", pool_args(controller, kept)).result
    assert after["unmanaged"] == {} and not after.get("warnings")
