"""The reconcile_timer role writes a hardened service, a timer and a private credentials file, idempotently."""

from __future__ import annotations

import os
import pathlib
import shutil
import stat
import subprocess
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
BIN = pathlib.Path(sys.executable).parent


def run_role(tmp_path: pathlib.Path, env_vars: dict[str, str]) -> str:
    playbook = [
        {
            "name": "install the timer files",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "roles": [
                {
                    "role": "selfhosted.github_runners.reconcile_timer",
                    "vars": {
                        "reconcile_timer_manage_service": False,
                        "reconcile_timer_config_dir": str(tmp_path / "etc"),
                        "reconcile_timer_state_dir": str(tmp_path / "state"),
                        "reconcile_timer_unit_dir": str(tmp_path / "units"),
                        "reconcile_timer_ansible_playbook": str(BIN / "ansible-playbook"),
                        "reconcile_timer_interval_minutes": 3,
                        "reconcile_timer_env": env_vars,
                    },
                }
            ],
        }
    ]
    (tmp_path / "units").mkdir(exist_ok=True)
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump(playbook))
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".venv" / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
    }
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), str(path)], env=env, capture_output=True, text=True, check=False, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def recap_changed(output: str) -> int:
    line = next(line for line in output.splitlines() if line.startswith("localhost"))
    return int(line.split("changed=")[1].split()[0])


def test_timer_files_are_written_once_and_private(tmp_path: pathlib.Path) -> None:
    secret = "ghp_" + "s3cr3t" * 6
    first = run_role(tmp_path, {"GITHUB_TOKEN": secret, "OS_CLOUD": "mycloud", "ODD": 'a "quoted" \\ value'})
    assert recap_changed(first) > 0
    assert secret not in first

    service = (tmp_path / "units" / "github-runners-reconcile.service").read_text()
    timer = (tmp_path / "units" / "github-runners-reconcile.timer").read_text()
    env_file = tmp_path / "etc" / "reconcile.env"
    assert "ExecStart=/usr/bin/flock --nonblock" in service
    assert "selfhosted.github_runners.reconcile -e @" in service
    assert "NoNewPrivileges=true" in service and "ProtectSystem=strict" in service
    assert "OnUnitInactiveSec=3min" in timer
    assert f'GITHUB_TOKEN="{secret}"' in env_file.read_text()
    assert 'ODD="a \\"quoted\\" \\\\ value"' in env_file.read_text()  # systemd's double-quote escaping
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600

    second = run_role(tmp_path, {"GITHUB_TOKEN": secret, "OS_CLOUD": "mycloud", "ODD": 'a "quoted" \\ value'})
    assert recap_changed(second) == 0

    analyze = shutil.which("systemd-analyze")
    if analyze:  # lints the units as systemd would load them
        proc = subprocess.run(
            [analyze, "verify", "--man=no", str(tmp_path / "units" / "github-runners-reconcile.timer")],
            capture_output=True,
            text=True,
            check=False,
        )
        problems = [line for line in proc.stderr.splitlines() if "github-runners-reconcile" in line]
        assert problems == [], proc.stderr
