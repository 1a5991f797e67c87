"""The reactive_consumer role: a virtual environment, a configuration and one private file per secret, and a
hardened unit, idempotently; the installed service checks its configuration from its unit's command line."""

from __future__ import annotations

import getpass
import pathlib
import subprocess
import sys
import typing as t

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

# Five plays, each running pip over the virtual environment: slow on a busy machine.
pytestmark = pytest.mark.timeout(5 * PLAY_TIMEOUT)

UNIT = "github-runners-reactive-consumer"
TOKEN = "ghp_" + "c0nsumer" * 4
MONGODB_PASSWORD = "m0ng0-" + "p" * 12
OS_PASSWORD = "0penstack-" + "q" * 12
APP_KEY = "-----BEGIN RSA PRIVATE KEY-----\n" + "A" * 64 + "\n-----END RSA PRIVATE KEY-----\n"
CLOUDS_YAML = (
    "clouds:\n  mycloud:\n    auth:\n      auth_url: https://keystone.example/v3\n    region_name: RegionOne\n"
)
POOL = {
    "name": "small",
    "repository": "octo/hello",
    "labels": ["self-hosted", "linux", "small"],
    "flavor": "m1.small",
    "image": "ubuntu-24.04",
    "networks": ["runners"],
    "max_runners": 5,
}


def check_command(unit: str, config: pathlib.Path) -> subprocess.CompletedProcess[str]:
    """The unit's command line with `--check`, run as it is: the installed collection in the role's venv."""
    command = [*exec_start(unit), "--check"]
    assert command[-3:] == ["--config", str(config), "--check"]
    environment = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(command, env=environment, capture_output=True, text=True, check=False, timeout=120)


def test_the_role_installs_a_hardened_consumer_with_private_secrets(tmp_path: pathlib.Path) -> None:
    user = getpass.getuser()
    mongodb_uri = f"mongodb://consumer:{MONGODB_PASSWORD}@127.0.0.1:27017/?authSource=admin"
    role_vars: dict[str, t.Any] = {
        "reactive_consumer_controller_id": "ci",
        "reactive_consumer_pools": [POOL],
        "reactive_consumer_github_token": TOKEN,
        "reactive_consumer_mongodb_uri": mongodb_uri,
        "reactive_consumer_mongodb_database": "ghr_role",
        "reactive_consumer_openstack_cloud": "mycloud",
        "reactive_consumer_openstack_clouds_yaml": CLOUDS_YAML,
        "reactive_consumer_openstack_auth": {"username": "ci", "password": OS_PASSWORD, "project_name": "ci"},
        "reactive_consumer_openstack_interface": "internal",
        "reactive_consumer_concurrency": 4,
        "reactive_consumer_metrics_port": 9555,
        "reactive_consumer_user": user,
        "reactive_consumer_manage_user": False,
        "reactive_consumer_manage_systemd": False,
        "reactive_consumer_venv": str(tmp_path / "venv"),
        "reactive_consumer_python": sys.executable,
        "reactive_consumer_config_dir": str(tmp_path / "etc"),
        "reactive_consumer_unit_dir": str(tmp_path / "units"),
    }
    (tmp_path / "units").mkdir()
    first = run_role(tmp_path, "reactive_consumer", role_vars)
    assert recap_changed(first) > 0
    assert restart_wanted(first)
    assert [secret for secret in (TOKEN, MONGODB_PASSWORD, OS_PASSWORD) if secret in first] == []

    etc = tmp_path / "etc"
    config_file = etc / "reactive-consumer.yml"
    for name in (
        "reactive-consumer.yml",
        "reactive-consumer-github-token",
        "reactive-consumer-mongodb-uri",
        "reactive-consumer-openstack-auth.yml",
        "reactive-consumer-clouds.yaml",
    ):
        assert_private(etc / name, user)
    assert (etc / "reactive-consumer-github-token").read_text() == TOKEN
    assert (etc / "reactive-consumer-mongodb-uri").read_text() == mongodb_uri
    assert yaml.safe_load((etc / "reactive-consumer-openstack-auth.yml").read_text())["password"] == OS_PASSWORD
    assert (etc / "reactive-consumer-clouds.yaml").read_text() == CLOUDS_YAML
    assert not (etc / "reactive-consumer-github-app-key.pem").exists()
    text = config_file.read_text()
    assert [secret for secret in (TOKEN, MONGODB_PASSWORD, OS_PASSWORD) if secret in text] == []
    config = yaml.safe_load(text)
    assert config["controller_id"] == "ci" and config["pools"] == [POOL]
    assert config["github"]["token_file"] == str(etc / "reactive-consumer-github-token")
    assert "app_id" not in config["github"]
    assert config["openstack"] == {
        "cloud": "mycloud",
        "interface": "internal",
        "auth_file": str(etc / "reactive-consumer-openstack-auth.yml"),
    }
    assert config["mongodb"]["uri_file"] == str(etc / "reactive-consumer-mongodb-uri")
    assert config["mongodb"]["database"] == "ghr_role"
    assert config["consumer"]["concurrency"] == 4
    assert config["metrics"] == {"host": "127.0.0.1", "port": 9555}
    assert config["log"] == {"format": "json", "level": "info"}

    unit = (tmp_path / "units" / f"{UNIT}.service").read_text()
    hardening = (tmp_path / "units" / f"{UNIT}.service.d" / "hardening.conf").read_text()
    assert f"User={user}" in unit and "Restart=on-failure" in unit
    assert f'Environment="OS_CLIENT_CONFIG_FILE={etc / "reactive-consumer-clouds.yaml"}"' in unit
    assert "TimeoutStopSec=30" in unit  # the consumer's shutdown_timeout and room to spare
    for setting in (
        "NoNewPrivileges=true",
        "ProtectSystem=strict",
        "ProtectHome=true",
        "PrivateTmp=true",
        "CapabilityBoundingSet=\n",
    ):
        assert setting in hardening, setting
    assert "ReadWritePaths" not in hardening  # the consumer writes nowhere on disk

    second = run_role(tmp_path, "reactive_consumer", role_vars)
    assert recap_changed(second) == 0
    assert not restart_wanted(second)

    # The unit and its drop-in as systemd would load them.
    assert_systemd_accepts(tmp_path / "units" / f"{UNIT}.service", UNIT, "hardening.conf")

    checked = check_command(unit, config_file)
    assert (checked.returncode, checked.stdout) == (0, "configuration OK: 1 pools\n"), checked.stderr

    # A change of the configuration is written and asks for a restart.
    role_vars["reactive_consumer_concurrency"] = 16
    third = run_role(tmp_path, "reactive_consumer", role_vars)
    assert recap_changed(third) == 1
    assert restart_wanted(third)
    assert yaml.safe_load(config_file.read_text())["consumer"]["concurrency"] == 16

    # From a token to a GitHub App: the key gets its own file, the token's file goes.
    del role_vars["reactive_consumer_github_token"]
    role_vars.update(
        reactive_consumer_github_app_id="12345",
        reactive_consumer_github_app_private_key=APP_KEY,
        reactive_consumer_github_app_installation_id=678,
    )
    fourth = run_role(tmp_path, "reactive_consumer", role_vars)
    assert restart_wanted(fourth)
    assert "A" * 64 not in fourth
    assert not (etc / "reactive-consumer-github-token").exists()
    assert_private(etc / "reactive-consumer-github-app-key.pem", user)
    github = yaml.safe_load(config_file.read_text())["github"]
    assert (github["app_id"], github["app_installation_id"]) == ("12345", 678)
    assert github["app_private_key_file"] == str(etc / "reactive-consumer-github-app-key.pem")
    assert check_command(unit, config_file).returncode == 0
    assert recap_changed(run_role(tmp_path, "reactive_consumer", role_vars)) == 0
