"""What the role tests share: play a role against localhost, read its recap, lint its units."""

from __future__ import annotations

import os
import pathlib
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import sys
import typing as t

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
BIN = pathlib.Path(sys.executable).parent
# A role that builds a virtual environment runs pip: slow on a busy machine.
PLAY_TIMEOUT = 900


def run_role(tmp_path: pathlib.Path, role: str, role_vars: dict[str, t.Any], *, verbose: bool = True) -> str:
    """The output of a play of `selfhosted.github_runners.<role>` on localhost; fails the test if the play failed."""
    playbook = [
        {
            "name": f"play the {role} role",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "roles": [{"role": f"selfhosted.github_runners.{role}", "vars": role_vars}],
        }
    ]
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump(playbook))
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".venv" / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
    }
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), *(["-v"] if verbose else []), str(path)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=PLAY_TIMEOUT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def recap_changed(output: str) -> int:
    line = next(line for line in output.splitlines() if line.startswith("localhost"))
    return int(line.split("changed=")[1].split()[0])


def restart_wanted(output: str) -> bool:
    """Whether python_service's restart task found a change that needs a restart (its first condition).

    systemd does not run here, so the task is skipped either way; `-v` says which condition was false.
    """
    block = output.split("TASK [selfhosted.github_runners.python_service : Restart the service", 1)[1].split(
        "TASK [", 1
    )[0]
    false_condition = re.search(r'"false_condition": "([^"]+)"', block)
    assert false_condition is not None, block
    return false_condition.group(1) != "python_service_restart_needed | bool"


def assert_private(path: pathlib.Path, user: str) -> None:
    """The file is mode 0600 and owned by `user`."""
    info = path.stat()
    assert (stat.S_IMODE(info.st_mode), pwd.getpwuid(info.st_uid).pw_name) == (0o600, user), path


def assert_systemd_accepts(unit: pathlib.Path, *names: str) -> None:
    """`systemd-analyze verify` finds nothing wrong in the unit or its drop-ins, where it is installed."""
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        return
    proc = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, check=False, timeout=120
    )
    problems = [line for line in proc.stderr.splitlines() if any(name in line for name in names)]
    assert problems == [], proc.stderr


def exec_start(unit: str) -> list[str]:
    """The command line of a unit's ExecStart=."""
    line = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))
