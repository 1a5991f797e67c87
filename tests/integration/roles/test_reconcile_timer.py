"""The reconcile_timer role writes a hardened service, a timer and a private credentials file, idempotently."""

from __future__ import annotations

import pathlib
import stat

from tests.integration.roles.playbook import BIN, assert_systemd_accepts, recap_changed, run_role


def run_timer_role(tmp_path: pathlib.Path, env_vars: dict[str, str]) -> str:
    (tmp_path / "units").mkdir(exist_ok=True)
    role_vars = {
        "reconcile_timer_manage_service": False,
        "reconcile_timer_config_dir": str(tmp_path / "etc"),
        "reconcile_timer_state_dir": str(tmp_path / "state"),
        "reconcile_timer_unit_dir": str(tmp_path / "units"),
        "reconcile_timer_ansible_playbook": str(BIN / "ansible-playbook"),
        "reconcile_timer_interval_minutes": 3,
        "reconcile_timer_env": env_vars,
    }
    return run_role(tmp_path, "reconcile_timer", role_vars, verbose=False)


def test_timer_files_are_written_once_and_private(tmp_path: pathlib.Path) -> None:
    secret = "ghp_" + "s3cr3t" * 6
    first = run_timer_role(tmp_path, {"GITHUB_TOKEN": secret, "OS_CLOUD": "mycloud", "ODD": 'a "quoted" \\ value'})
    assert recap_changed(first) > 0
    assert secret not in first

    service = (tmp_path / "units" / "github-runners-reconcile.service").read_text()
    timer = (tmp_path / "units" / "github-runners-reconcile.timer").read_text()
    env_file = tmp_path / "etc" / "reconcile.env"
    assert "ExecStart=/usr/bin/flock --nonblock" in service
    assert "selfhosted.github_runners.reconcile -e @" in service
    hardening = (tmp_path / "units" / "github-runners-reconcile.service.d" / "hardening.conf").read_text()
    assert "NoNewPrivileges=true" not in service  # one hardening for every service: the shared drop-in
    assert "NoNewPrivileges=true" in hardening and "ProtectSystem=strict" in hardening
    assert f"ReadWritePaths={tmp_path / 'state'}" in hardening
    assert "SystemCallFilter=@system-service" in hardening and "~@privileged" not in hardening
    assert "OnUnitInactiveSec=3min" in timer
    assert f'GITHUB_TOKEN="{secret}"' in env_file.read_text()
    assert 'ODD="a \\"quoted\\" \\\\ value"' in env_file.read_text()  # systemd's double-quote escaping
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600

    second = run_timer_role(tmp_path, {"GITHUB_TOKEN": secret, "OS_CLOUD": "mycloud", "ODD": 'a "quoted" \\ value'})
    assert recap_changed(second) == 0

    # The units as systemd would load them.
    assert_systemd_accepts(tmp_path / "units" / "github-runners-reconcile.timer", "github-runners-reconcile")
