"""The shipped reconcile playbook, run as the README tells users to run it."""

from __future__ import annotations

import subprocess
import typing as t

import yaml

from tests.integration.playbook import BIN
from tests.integration.reconcile.conftest import Ansible, Core, pool_dict


def run_playbook(
    ansible: Ansible,
    pools: list[dict[str, t.Any]],
    *extra: str,
    playbook: str = "selfhosted.github_runners.reconcile",
) -> str:
    vars_file = ansible.workdir / "pools.yml"
    vars_file.write_text(
        yaml.safe_dump(
            {
                "reconcile_controller_id": "it",
                "reconcile_pools": pools,
                "reconcile_lock_dir": str(ansible.workdir / "locks"),
            }
        )
    )
    cmd = [str(BIN / "ansible-playbook"), playbook, "-e", f"@{vars_file}", *extra]
    proc = subprocess.run(cmd, env=ansible.env(), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_summary_is_readable_and_check_mode_tells_what_would_happen(ansible: Ansible, core: Core) -> None:
    pool = pool_dict(ansible.sandbox, min_idle=2)
    checked = run_playbook(ansible, [pool], "--check")
    assert f"{pool['name']}: no runners; would create 2, would delete 0" in checked
    assert core.servers(pool["name"]) == []

    applied = run_playbook(ansible, [pool])
    assert f"{pool['name']}: no runners; created 2, deleted 0" in applied
    assert "{'" not in applied  # no Python dict repr in what people read

    emptied = run_playbook(ansible, [pool], "-e", "reconcile_state=absent")
    assert "; created 0, deleted 2 (" in emptied


def test_status_playbook_shows_every_runner_with_its_state(ansible: Ansible, core: Core) -> None:
    pool = pool_dict(ansible.sandbox, min_idle=2)
    run_playbook(ansible, [pool])
    core.wait_idle(pool["name"], 2)
    shown = run_playbook(ansible, [pool], playbook="selfhosted.github_runners.status")
    assert f"{pool['name']}: idle 2" in shown
    for server in core.servers(pool["name"]):
        line = next(line for line in shown.splitlines() if server["name"] in line)
        assert "idle" in line and "vm ACTIVE" in line and "github online" in line, line
