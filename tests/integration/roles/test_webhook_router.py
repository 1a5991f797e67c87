"""The webhook_router role: a virtual environment, private files and a hardened unit, idempotently; the
installed service runs from its unit's command line and routes a delivery into MongoDB."""

from __future__ import annotations

import getpass
import grp
import json
import pathlib
import pwd
import subprocess
import sys
import typing as t
import uuid

import pymongo
import pytest
import yaml

from tests.integration.roles.playbook import (
    PLAY_TIMEOUT,
    assert_private,
    assert_systemd_accepts,
    exec_start,
    recap_changed,
    restart_wanted,
    run_role,
)
from tests.integration.router.service import Client, RouterProcess
from tests.integration.router.test_load import workflow_job
from tests.sandbox.mongo import MongoServer, free_port

SECRETS = ["whsec-new-" + "n" * 20, "whsec-old-" + "o" * 20]
UNIT = "github-runners-webhook-router"

# Three plays, each running pip over the virtual environment: slow on a busy machine.
pytestmark = [pytest.mark.mongodb, pytest.mark.timeout(3 * PLAY_TIMEOUT)]


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
    first = run_role(tmp_path, "webhook_router", role_vars)
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
        assert_private(etc / name, user)
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

    second = run_role(tmp_path, "webhook_router", role_vars)
    assert recap_changed(second) == 0
    assert not restart_wanted(second)

    # The unit and its drop-in as systemd would load them.
    assert_systemd_accepts(tmp_path / "units" / f"{UNIT}.service", UNIT, "hardening.conf")

    # The unit's command line, run as it is: the installed collection in the role's virtual environment.
    command = exec_start(unit)
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
    third = run_role(tmp_path, "webhook_router", role_vars)
    assert recap_changed(third) == 1
    assert restart_wanted(third)
