"""A failing cloud against the sandbox: creation backoff, names resolved before registering, plain error texts."""

from __future__ import annotations

import time
import typing as t

import pytest

from tests.integration.reconcile.conftest import Ansible, Core, pool_dict

NO_VALID_HOST = "No valid host was found. "  # Nova's fault text, trailing space included
QUOTA_VIA_ERROR = "Quota exceeded for instances: Requested 1, but already used 3 of 3 instances"


@pytest.fixture(autouse=True)
def _no_faults_left(sandbox: t.Any) -> t.Iterator[None]:
    yield
    sandbox.clear_faults()


def created(sandbox: t.Any, pool: dict[str, t.Any], since: int) -> tuple[int, int]:
    """(servers created, runners registered) for the pool since event `since`, from the sandbox's own log."""
    prefix = f"it-{pool['name']}-"

    def count(kind: str) -> int:
        return sum(1 for e in sandbox.events(kind, since=since) if str(e.get("name", "")).startswith(prefix))

    return count("server_create"), count("runner_register")


def last_event(sandbox: t.Any) -> int:
    events = sandbox.events()
    return int(events[-1]["seq"]) if events else 0


def pool_args(*pools: dict[str, t.Any], **extra: t.Any) -> dict[str, t.Any]:
    return {"controller_id": "it", "pools": list(pools), **extra}


def test_every_create_ending_in_error_backs_off_through_the_module(
    sandbox: t.Any, ansible: Ansible, core: Core
) -> None:
    # A long first delay, so that no later run of this test is past it however slow the machine.
    pool = pool_dict(sandbox, min_idle=2, creation_backoff="10m")
    sandbox.add_fault(kind="server_error", count=None, message=NO_VALID_HOST)
    since = last_event(sandbox)
    runs = [ansible.run("github_runner_pool", pool_args(pool)).result for _unused in range(5)]
    servers, registrations = created(sandbox, pool, since)
    assert 1 <= servers <= 4 and registrations <= 4, (servers, registrations)
    assert all(not r.get("failed") for r in runs)

    # Once no VM of the pool is booting any more, check mode tells the backoff and saves nothing.
    core.wait_for("no VM in BUILD", lambda: all(s["status"] != "BUILD" for s in core.servers(pool["name"])))
    state_file = ansible.workdir / "locks" / f"it-{pool['name']}.state.json"
    saved = state_file.read_bytes()
    checked = ansible.run("github_runner_pool", pool_args(pool), check=True).result
    assert state_file.read_bytes() == saved
    report = checked["pools"][0]
    assert report["plan"]["create"] == 0 and report["plan"]["held"] == 2
    backoff = report["backoff"]
    assert backoff["active"] is True and backoff["backoff_until"]
    assert backoff["consecutive_failures"] >= 2
    assert backoff["last_fault"] == "No valid host was found."
    assert backoff["fault_kind"] == "no_valid_host"
    assert any("creations back off until" in w for w in checked.get("warnings", []))
    assert "held back until" in report["summary"]
    # Waiting for idle runners that the backoff keeps from being created fails at once.
    waited = ansible.run("github_runner_pool", pool_args(pool, wait=True), expect_failure=True).result
    assert waited["failed"] is True and "idle" not in waited
    assert waited["msg"].startswith(f"not waiting for idle runners: pool {pool['name']}: creations back off until")

    sandbox.clear_faults()
    ansible.run("github_runner_pool", pool_args(pool, state="absent", force=True))


def test_an_unknown_image_makes_no_jit_registration_and_the_other_pools_go_on(
    sandbox: t.Any, ansible: Ansible, core: Core
) -> None:
    typo = pool_dict(sandbox, min_idle=3, image="ubuntu-24.04-runnr")
    same_typo = pool_dict(sandbox, min_idle=2, image="ubuntu-24.04-runnr")
    good = pool_dict(sandbox, min_idle=1)
    since = last_event(sandbox)
    sandbox.reset_counters()
    run = ansible.run("github_runner_pool", pool_args(typo, same_typo, good), expect_failure=True).result
    assert created(sandbox, typo, since) == (0, 0)
    assert created(sandbox, same_typo, since) == (0, 0)
    assert run["failed"] is True
    assert "pools[0].image: no image named 'ubuntu-24.04-runnr'" in run["msg"]
    assert "pools[1].image: no image named 'ubuntu-24.04-runnr'" in run["msg"]
    # The images that do exist come with it (a short list).
    images = "cirros-0.6.2, ubuntu-22.04, ubuntu-24.04-runner"
    assert [p["errors"] for p in run["pools"][:2]] == [
        [f"pool {typo['name']}: pools[0].image: no image named 'ubuntu-24.04-runnr' (images: {images})"],
        [f"pool {same_typo['name']}: pools[1].image: no image named 'ubuntu-24.04-runnr' (images: {images})"],
    ]
    assert len(run["pools"][2]["created"]) == 1 and run["pools"][2]["errors"] == []
    # One look-up per image name for the whole run (each starts with a GET by id): the failed
    # look-up is kept like the found one.
    assert sandbox.calls("glance", "GET", "/v2/images/{image_id}") == 2
    # A configuration error is no failing cloud: nothing backs off.
    assert run["pools"][0]["backoff"]["consecutive_failures"] == 0
    ansible.run("github_runner_pool", pool_args(good, state="absent", force=True))


def test_check_mode_names_an_unknown_network_too(sandbox: t.Any, ansible: Ansible) -> None:
    pool = pool_dict(sandbox, min_idle=1, networks=["runners-net", "runners-nett"])
    sandbox.reset_counters()
    run = ansible.run("github_runner_pool", pool_args(pool), check=True, expect_failure=True).result
    assert run["msg"].endswith("pools[0].networks[1]: no network named 'runners-nett' (networks: runners-net)")
    assert sandbox.calls("github", "POST") == 0 and sandbox.calls("nova", "POST") == 0


def test_quota_reached_through_error_is_recognised_as_quota(sandbox: t.Any, core: Core) -> None:
    pool = pool_dict(sandbox, min_idle=2)
    sandbox.add_fault(kind="server_error", count=None, message=QUOTA_VIA_ERROR)
    assert len(core.reconcile([pool]).pools[0].execution.created) == 2
    core.wait_for("servers in ERROR", lambda: all(s["status"] == "ERROR" for s in core.servers(pool["name"])))
    report = core.reconcile([pool])
    assert report.errors == []
    info = report.pools[0].backoff_info()
    assert info["fault_kind"] == "quota" and info["last_fault"] == QUOTA_VIA_ERROR
    assert info["active"] is True and info["consecutive_failures"] == 2
    assert report.pools[0].plan.held == 2
    assert sorted(report.pools[0].execution.deleted) == ["failed"]  # the ERROR VMs still go
    sandbox.clear_faults()
    core.reconcile([pool], mode="absent", force=True)


def test_a_5xx_on_create_backs_off_until_a_runner_comes_online(sandbox: t.Any, core: Core) -> None:
    pool = pool_dict(sandbox, min_idle=1, creation_backoff=0.5, creation_backoff_max=0.5)
    sandbox.add_fault(kind="status", service="nova", method="POST", route="/servers", status=500, count=1)
    first = core.reconcile([pool])
    assert first.errors and "HTTP 500" in first.errors[0]
    assert first.pools[0].backoff_info()["consecutive_failures"] == 1
    assert core.runners(pool["name"]) == []  # the JIT record went with the failed create
    time.sleep(0.6)  # past the longest delay
    retried = core.reconcile([pool])
    assert retried.errors == [] and len(retried.pools[0].execution.created) == 1
    core.wait_idle(pool["name"], 1)
    healed = core.reconcile([pool]).pools[0].backoff_info()
    assert healed["consecutive_failures"] == 0 and healed["active"] is False
    core.reconcile([pool], mode="absent", force=True)


def test_error_texts_carry_no_markup(sandbox: t.Any, core: Core) -> None:
    pool = pool_dict(sandbox, min_idle=1)
    # webob's JSON error body: its page template's HTML ends up in "message".
    body = {"itemNotFound": {"code": 404, "message": "The resource could not be found.<br /><br />\n\n\n"}}
    sandbox.add_fault(
        kind="status",
        service="nova",
        method="POST",
        route="/servers",
        status=404,
        count=1,
        body=body,
        headers={"Content-Type": "application/json"},
    )
    report = core.reconcile([pool])
    assert report.errors == [
        f"pool {pool['name']}: OpenStack POST /servers failed (HTTP 404): The resource could not be found."
    ]
    assert report.pools[0].backoff.last_fault == "The resource could not be found."
    core.reconcile([pool], mode="absent", force=True)
