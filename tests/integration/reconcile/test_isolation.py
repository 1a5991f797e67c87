"""One broken pool never stops the others: a repository that does not exist fails its pool only."""

from __future__ import annotations

import typing as t

from tests.integration.reconcile.conftest import Ansible, Core, pool_dict


def test_a_missing_repository_fails_its_pool_and_the_valid_pool_reaches_min_idle(
    sandbox: t.Any, ansible: Ansible, core: Core
) -> None:
    owner = sandbox.env["GITHUB_REPOSITORY"].split("/")[0]
    bad = pool_dict(sandbox, repository=f"{owner}/no-such-repository", min_idle=1)
    good = pool_dict(sandbox, min_idle=2)
    run = ansible.run("github_runner_pool", {"controller_id": "it", "pools": [bad, good]}, expect_failure=True)
    result = run.result
    assert result["failed"] is True
    assert result["msg"].startswith(f"1 of 2 pools failed ({bad['name']}); 1 reconciled without error")
    assert "does not exist, or the token lacks admin rights on it" in result["msg"]
    by_name = {p["name"]: p for p in result["pools"]}  # every pool's result comes with the failure
    assert by_name[bad["name"]]["reconciled"] is False
    assert by_name[bad["name"]]["errors"][0].startswith(f"pool {bad['name']}: cannot list the runners of repository")
    assert "(HTTP 404)" in by_name[bad["name"]]["errors"][0]
    assert by_name[good["name"]]["failed"] is False
    assert len(by_name[good["name"]]["created"]) == 2
    core.wait_idle(good["name"], 2, timeout=60)
    assert core.servers(bad["name"]) == []

    info = ansible.run("github_runner_pool_info", {"controller_id": "it", "pools": [bad, good]}, expect_failure=True)
    assert bad["name"] in info.result["msg"] and good["name"] not in info.result["msg"]
    views = {p["name"]: p for p in info.result["pools"]}
    assert views[good["name"]]["states"]["idle"] == 2
    assert "does not exist" in views[bad["name"]]["error"]
    ansible.run("github_runner_pool", {"controller_id": "it", "pools": [good], "state": "absent", "force": True})
