"""One module task run with ansible-playbook, as a user runs it; its registered result comes back as data."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import typing as t

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent


def ansible_env(workdir: pathlib.Path, drop: t.Tuple[str, ...] = ("ANSIBLE_",)) -> dict[str, str]:
    """This process's environment without the variables starting with `drop`, set up for the collection."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".venv" / "collections"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCAL_TEMP": str(workdir / "tmp"),
            "ANSIBLE_HOME": str(workdir / "home"),
        }
    )
    return env


def run_task(
    workdir: pathlib.Path,
    module: str,
    args: dict[str, t.Any],
    env: dict[str, str],
    *,
    check: bool = False,
    diff: bool = False,
    verbosity: int = 0,
) -> tuple[dict[str, t.Any], str, int]:
    """(registered result, playbook output, exit code) of one task of `module` (a name in this collection, or a FQCN)."""
    result_file = workdir / "result.json"
    result_file.unlink(missing_ok=True)
    playbook = [
        {
            "name": "test",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            # The modules need the Python that has the collection's requirements.
            "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
            "tasks": [
                {
                    "name": "module under test",
                    (module if "." in module else f"selfhosted.github_runners.{module}"): args,
                    "register": "out",
                    "ignore_errors": True,
                },
                {
                    "name": "save result",
                    "ansible.builtin.copy": {
                        "content": "{{ out | to_json }}",
                        "dest": str(result_file),
                        "mode": "0600",
                    },
                    "check_mode": False,
                    "diff": False,
                },
            ],
        }
    ]
    path = workdir / "play.yml"
    path.write_text(yaml.safe_dump(playbook))
    cmd = [str(BIN / "ansible-playbook"), str(path)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    if verbosity:
        cmd.append("-" + "v" * verbosity)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    output = proc.stdout + proc.stderr
    assert result_file.exists(), output
    return json.loads(result_file.read_text()), output, proc.returncode
