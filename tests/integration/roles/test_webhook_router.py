"""The webhook_router role: a virtual environment, private files and a hardened unit, idempotently; the
installed service runs from its unit's command line and routes a delivery into MongoDB."""

from __future__ import annotations

import getpass
import grp
import json
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
import uuid

import pymongo
import pytest
import yaml

from tests.integration.router.service import Client, RouterProcess
from tests.integration.router.test_load import workflow_job
from tests.sandbox.mongo import MongoServer, free_port

ROOT = pathlib.Path(__file__).resolve().parents[3]
BIN = pathlib.Path(sys.executable).parent
SECRETS = ["whsec-new-" + "n" * 20, "whsec-old-" + "o" * 20]
UNIT = "github-runners-webhook-router"

pytestmark = pytest.mark.mongodb


def run_role(tmp_path: pathlib.Path, role_vars: dict[str, t.Any]) -> str:
    playbook = [
        {
            "name": "install the webhook router",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "roles": [{"role": "selfhosted.github_runners.webhook_router", "vars": role_vars}],
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
        [str(BIN / "ansible-playbook"), "-v", str(path)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def recap_changed(output: str) -> int:
    line = next(line for line in output.splitlines() if line.startswith("localhost"))
    return int(line.split("changed=")[1].split()[0])


def restart_wanted(output: str) -> bool:
    """Whether the restart task's first condition (a change that needs a restart) held.

    systemd does not run here, so the task is skipped either way; `-v` says which condition was false.
    """
    block = output.split("TASK [selfhosted.github_runners.python_service : Restart the service", 1)[1].split(
        "TASK [", 1
    )[0]
    false_condition = re.search(r'"false_condition": "([^"]+)"', block)
    assert false_condition is not None, block
    return false_condition.group(1) != "python_service_restart_needed | bool"


def test_the_role_installs_a_hardened_service_that_routes_deliveries(
    tmp_path: pathlib.Path, mongodb: MongoServer
) -> None:
    user = getpass.getuser()
    database = f"ghr_role_{uuid.uuid4().hex[:8]}"
    port = free_port()
    role_vars = {
        "webhook_router_webhook_secrets": SECRETS,
        "webhook_router_mongodb_uri": mongodb.uri,
        "webhook_router_mongodb_database": database,
        "webhook_router_pools": [{"name": "small", "labels": ["linux", "small"]}],
        "webhook_router_listen_port": port,
        "webhook_router_user": user,
        "webhook_router_manage_user": False,
        "webhook_router_manage_systemd": False,
        "webhook_router_venv": str(tmp_path / "venv"),
        "webhook_router_python": sys.executable,
        "webhook_router_config_dir": str(tmp_path / "etc"),
        "webhook_router_unit_dir": str(tmp_path / "units"),
    }
    (tmp_path / "units").mkdir()
    first = run_role(tmp_path, role_vars)
    assert recap_changed(first) > 0
    assert restart_wanted(first)
    assert not [secret for secret in [*SECRETS, mongodb.uri] if secret in first]

    etc = tmp_path / "etc"
    for name in (
        "webhook-router.yml",
        "webhook-router-secret-0",
        "webhook-router-secret-1",
        "webhook-router-mongodb-uri",
    ):
        info = (etc / name).stat()
        assert (stat.S_IMODE(info.st_mode), pwd.getpwuid(info.st_uid).pw_name) == (0o600, user), name
    assert (etc / "webhook-router-secret-1").read_text() == SECRETS[1]
    assert grp.getgrgid(etc.stat().st_gid).gr_name == grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
    config = yaml.safe_load((etc / "webhook-router.yml").read_text())
    assert config["listen"] == {"host": "127.0.0.1", "port": port}
    assert config["webhook_secret_files"] == [
        str(etc / "webhook-router-secret-0"),
        str(etc / "webhook-router-secret-1"),
    ]

    unit = (tmp_path / "units" / f"{UNIT}.service").read_text()
    hardening = (tmp_path / "units" / f"{UNIT}.service.d" / "hardening.conf").read_text()
    assert f"User={user}" in unit and "Restart=on-failure" in unit
    for setting in (
        "NoNewPrivileges=true",
        "ProtectSystem=strict",
        "ProtectHome=true",
        "PrivateTmp=true",
        "CapabilityBoundingSet=\n",
    ):
        assert setting in hardening, setting
    assert "ReadWritePaths" not in hardening  # the router writes nowhere

    second = run_role(tmp_path, role_vars)
    assert recap_changed(second) == 0
    assert not restart_wanted(second)

    analyze = shutil.which("systemd-analyze")
    if analyze:  # lints the unit and its drop-in as systemd would load them
        proc = subprocess.run(
            [analyze, "verify", "--man=no", str(tmp_path / "units" / f"{UNIT}.service")],
            capture_output=True,
            text=True,
            check=False,
        )
        problems = [line for line in proc.stderr.splitlines() if UNIT in line or "hardening.conf" in line]
        assert problems == [], proc.stderr

    # The unit's command line, run as it is: the installed collection in the role's virtual environment.
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    command = shlex.split(exec_start.removeprefix("ExecStart="))
    assert command[0] == str(tmp_path / "venv" / "bin" / "python")
    environment = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    process = subprocess.Popen(command, env=environment, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert process.stderr is not None
    first_line = process.stderr.readline()
    assert json.loads(first_line)["message"] == "listening", first_line
    router = RouterProcess(process, port, [], etc / "webhook-router.yml")
    client = Client(port)
    assert client.deliver(workflow_job(5), secret=SECRETS[1].encode()).status == 200
    assert client.deliver(workflow_job(6), secret=b"wrong").status == 401
    assert client.request("GET", "/healthz").status == 200
    assert router.stop() == 0
    mongo: pymongo.MongoClient[dict[str, t.Any]] = pymongo.MongoClient(mongodb.uri, serverSelectionTimeoutMS=5000)
    try:
        assert [doc["job_id"] for doc in mongo[database]["jobs"].find()] == [5]
    finally:
        mongo.drop_database(database)
        mongo.close()

    # A change of the configuration (a new pool) is written and asks for a restart.
    role_vars["webhook_router_pools"] = [*role_vars["webhook_router_pools"], {"name": "large", "labels": ["large"]}]
    third = run_role(tmp_path, role_vars)
    assert recap_changed(third) == 1
    assert restart_wanted(third)
