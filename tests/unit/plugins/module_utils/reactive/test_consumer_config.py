"""The reactive consumer's settings: YAML, environment overrides, secret files."""

from __future__ import annotations

import pathlib
import typing as t

import pytest
import yaml

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import ConfigError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive import consumer_service
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.consumer_config import (
    ConsumerSettings,
    GithubSettings,
    load_settings,
    parse_settings,
)
from tests.unit.plugins.module_utils.factories import raw_pool

TOKEN = "ghp_" + "T0ken" * 7
KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIsecretkeymaterial\n-----END RSA PRIVATE KEY-----\n"
PASSWORD = "m0ng0-pa%2Fss"
OS_PASSWORD = "0penstack-pw"
SECRETS = (TOKEN, "MIIsecretkeymaterial", "m0ng0-pa", OS_PASSWORD)


@pytest.fixture
def files(tmp_path: pathlib.Path) -> dict[str, pathlib.Path]:
    def private(name: str, content: str, mode: int = 0o600) -> pathlib.Path:
        path = tmp_path / name
        path.write_text(content)
        path.chmod(mode)
        return path

    return {
        "token": private("github-token", TOKEN + "\n"),
        "key": private("app-key.pem", KEY),
        "uri": private("mongodb-uri", f"mongodb://consumer:{PASSWORD}@127.0.0.1:27017/?authSource=admin\n"),
        "auth": private(
            "openstack-auth.yml",
            yaml.safe_dump({"auth_url": "https://keystone.example/v3", "username": "ci", "password": OS_PASSWORD}),
        ),
        "readable": private("readable-token", TOKEN, 0o644),
    }


def config(files: dict[str, pathlib.Path], **overrides: t.Any) -> dict[str, t.Any]:
    return {
        "controller_id": "ci",
        "pools": [raw_pool()],
        "github": {"token_file": str(files["token"])},
        "mongodb": {"uri_file": str(files["uri"])},
        **overrides,
    }


def assert_no_secret(text: str) -> None:
    leaked = [secret for secret in SECRETS if secret in text]
    assert leaked == [], text


def test_defaults_and_secrets_from_files(files: dict[str, pathlib.Path]) -> None:
    settings = parse_settings(config(files), {})
    assert settings.controller_id == "ci"
    assert [pool.name for pool in settings.pools] == ["small"]
    assert settings.github == GithubSettings(token=TOKEN)
    assert settings.mongodb_uri == f"mongodb://consumer:{PASSWORD}@127.0.0.1:27017/?authSource=admin"
    assert settings.openstack.connect_kwargs() == {}  # clouds.yaml / OS_* decide
    defaults = ConsumerSettings(
        controller_id="ci",
        pools=settings.pools,
        github=settings.github,
        openstack=settings.openstack,
        mongodb_uri=settings.mongodb_uri,
    )
    assert settings == defaults
    assert (settings.database, settings.jobs_collection, settings.claims_collection) == (
        "github_runners",
        "jobs",
        "claims",
    )
    assert (settings.locks_collection, settings.messages_collection) == ("locks", "messages")
    assert (settings.concurrency, settings.poll_interval, settings.lease_ttl, settings.max_attempts) == (
        8,
        0.25,
        120,
        5,
    )
    assert (settings.retry_delay, settings.retry_delay_max, settings.lock_ttl, settings.lock_timeout) == (
        5,
        600,
        15,
        30,
    )
    assert (settings.drain_kombu_messages, settings.shutdown_timeout, settings.doorbell) == (False, 10, False)
    assert (settings.metrics_host, settings.metrics_port, settings.log_format, settings.log_level) == (
        "127.0.0.1",
        9464,
        "text",
        "info",
    )
    assert settings.exposed_files == ()
    assert_no_secret(repr(settings))


def test_every_key_of_a_yaml_file(files: dict[str, pathlib.Path], tmp_path: pathlib.Path) -> None:
    body = config(
        files,
        pools=[raw_pool(), raw_pool(name="large", flavor="m1.large")],
        github={
            "api_url": "https://ghes.example/api/v3/",
            "app_id": 12345,
            "app_private_key_file": str(files["key"]),
            "app_installation_id": 678,
            "timeout": 10,
            "max_rate_limit_wait": 0,
            "write_burst": 20,
            "writes_per_minute": 30.5,
        },
        openstack={
            "cloud": "mycloud",
            "auth_file": str(files["auth"]),
            "auth_type": "password",
            "region_name": "RegionTwo",
            "interface": "Internal",
            "validate_certs": False,
            "ca_cert": "/etc/ssl/cloud-ca.pem",
            "api_timeout": 45,
        },
        mongodb={
            "uri": "mongodb://db1.example,db2.example/?replicaSet=rs0",
            "database": "ghr",
            "jobs_collection": "j",
            "claims_collection": "c",
            "locks_collection": "l",
            "messages_collection": "m",
            "timeout": 2,
            "doorbell": True,
        },
        consumer={
            "concurrency": 64,
            "poll_interval": 0.01,
            "lease_ttl": 10,
            "max_attempts": 1,
            "retry_delay": 0,
            "retry_delay_max": 0,
            "lock_ttl": 3600,
            "lock_timeout": 1,
            "drain_kombu_messages": True,
            "shutdown_timeout": 0,
        },
        metrics={"host": "::1", "port": 0},
        log={"format": "JSON", "level": "debug"},
    )
    path = tmp_path / "consumer.yml"
    path.write_text(yaml.safe_dump(body))
    settings = load_settings(path, {})
    assert [pool.name for pool in settings.pools] == ["small", "large"]
    assert settings.github == GithubSettings(
        api_url="https://ghes.example/api/v3",
        app_id="12345",
        app_private_key=KEY.rstrip("\n"),
        app_installation_id=678,
        timeout=10.0,
        max_rate_limit_wait=0.0,
        write_burst=20,
        writes_per_minute=30.5,
    )
    assert settings.openstack.connect_kwargs() == {
        "cloud": "mycloud",
        "auth": {"auth_url": "https://keystone.example/v3", "username": "ci", "password": OS_PASSWORD},
        "auth_type": "password",
        "region_name": "RegionTwo",
        "interface": "internal",
        "verify": False,
        "cacert": "/etc/ssl/cloud-ca.pem",
        "api_timeout": 45.0,
    }
    assert settings.mongodb_uri == "mongodb://db1.example,db2.example/?replicaSet=rs0"
    assert (settings.database, settings.jobs_collection, settings.claims_collection) == ("ghr", "j", "c")
    assert (settings.locks_collection, settings.messages_collection, settings.mongodb_timeout) == ("l", "m", 2.0)
    assert (settings.concurrency, settings.poll_interval, settings.lease_ttl, settings.max_attempts) == (
        64,
        0.01,
        10,
        1,
    )
    assert (settings.retry_delay, settings.retry_delay_max, settings.lock_ttl, settings.lock_timeout) == (0, 0, 3600, 1)
    assert (settings.drain_kombu_messages, settings.shutdown_timeout, settings.doorbell) == (True, 0.0, True)
    assert (settings.metrics_host, settings.metrics_port, settings.log_format, settings.log_level) == (
        "::1",
        0,
        "json",
        "debug",
    )
    assert settings.secrets == (KEY.rstrip("\n"), OS_PASSWORD)
    assert_no_secret(repr(settings))


def test_the_environment_overrides(files: dict[str, pathlib.Path], tmp_path: pathlib.Path) -> None:
    other_token = tmp_path / "other-token"
    other_token.write_text("ghs_other")
    other_token.chmod(0o600)
    env = {
        "GHR_CONSUMER_LOG_FORMAT": "json",
        "GHR_CONSUMER_LOG_LEVEL": "warning",
        "GHR_CONSUMER_METRICS_HOST": "0.0.0.0",
        "GHR_CONSUMER_METRICS_PORT": "9500",
        "GHR_CONSUMER_GITHUB_TOKEN_FILE": str(other_token),
        "GHR_CONSUMER_MONGODB_URI_FILE": str(files["readable"]),
    }
    settings = parse_settings(config(files), env)
    assert (settings.log_format, settings.log_level, settings.metrics_host, settings.metrics_port) == (
        "json",
        "warning",
        "0.0.0.0",
        9500,
    )
    assert settings.github.token == "ghs_other"
    assert settings.mongodb_uri == TOKEN  # whatever the file holds
    assert settings.exposed_files == (str(files["readable"]),)
    settings = parse_settings(config(files), {**env, "MONGODB_URI": "mongodb://elsewhere/"})
    assert settings.mongodb_uri == "mongodb://elsewhere/"
    # The environment alone may give the credentials.
    bare = {"controller_id": "ci", "pools": [raw_pool()]}
    settings = parse_settings(bare, {**env, "MONGODB_URI": "mongodb://elsewhere/"})
    assert (settings.github.token, settings.mongodb_uri) == ("ghs_other", "mongodb://elsewhere/")


def test_secrets_for_redaction(files: dict[str, pathlib.Path]) -> None:
    settings = parse_settings(config(files, openstack={"auth_file": str(files["auth"])}), {})
    # The password as written and decoded, the token, the OpenStack password.
    assert set(settings.secrets) == {TOKEN, PASSWORD, "m0ng0-pa/ss", OS_PASSWORD}
    assert settings.openstack.auth is not None and settings.openstack.auth["username"] == "ci"
    assert_no_secret(repr(settings))


def test_secret_files_readable_by_others_are_listed(files: dict[str, pathlib.Path]) -> None:
    for path in (files["key"], files["uri"], files["auth"]):
        path.chmod(0o640)
    body = config(
        files,
        github={"app_id": "1", "app_private_key_file": str(files["key"])},
        openstack={"auth_file": str(files["auth"])},
    )
    settings = parse_settings(body, {})
    assert sorted(settings.exposed_files) == sorted(str(files[name]) for name in ("key", "uri", "auth"))
    settings = parse_settings(config(files, github={"token_file": str(files["readable"])}), {})
    assert str(files["readable"]) in settings.exposed_files
    files["uri"].chmod(0o600)
    assert parse_settings(config(files), {}).exposed_files == ()


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"controller_id": None}, "controller_id", ""),
        ({"controller_id": "c-i"}, "controller_id", "must not contain '-'"),
        ({"pools": []}, "pools", "non-empty list"),
        ({"pools": "small"}, "pools", "list"),
        ({"pools": [{**raw_pool(), "name": "Small"}]}, "pools[0].name", ""),
        ({"pools": [raw_pool(), raw_pool(flavor=None)]}, "pools[1].flavor", ""),
        ({"pools": [raw_pool(), raw_pool()]}, "pools[1].name", "duplicate"),
        ({"pools": [raw_pool(colour="blue")]}, "pools[0].colour", "unknown"),
        ({"github": None}, "github", "mapping"),
        ({"github": {}}, "github", "set token_file"),
        ({"github": {"token_file": "/nonexistent/token"}}, "github.token_file", "cannot read"),
        ({"github": {"token_file": ""}}, "github.token_file", "non-empty string"),
        ({"github": {"app_id": "1"}}, "github.app_private_key_file", "required with app_id"),
        ({"github": {"app_id": True, "app_private_key_file": "/x"}}, "github.app_id", "non-empty string"),
        ({"github": {"token_file": "TOKEN", "app_id": "1"}}, "github", "one of token_file and app_id"),
        ({"github": {"token_file": "TOKEN", "app_installation_id": 3}}, "github.app_installation_id", "App"),
        (
            {"github": {"app_id": "1", "app_private_key_file": "TOKEN"}},
            "github.app_private_key_file",
            "PEM",
        ),
        (
            {"github": {"app_id": "1", "app_private_key_file": "KEY", "app_installation_id": "x"}},
            "github.app_installation_id",
            "integer",
        ),
        ({"github": {"token_file": "TOKEN", "api_url": "ftp://github.example"}}, "github.api_url", "http(s)"),
        ({"github": {"token_file": "TOKEN", "api_url": "https://u:p@github.example"}}, "github.api_url", "without"),
        ({"github": {"token_file": "TOKEN", "timeout": "30"}}, "github.timeout", "seconds"),
        ({"github": {"token_file": "TOKEN", "max_rate_limit_wait": -1}}, "github.max_rate_limit_wait", "seconds"),
        ({"github": {"token_file": "TOKEN", "write_burst": 0}}, "github.write_burst", "from 1"),
        ({"github": {"token_file": "TOKEN", "writes_per_minute": 0}}, "github.writes_per_minute", "number"),
        ({"github": {"token_file": "TOKEN", "token": TOKEN}}, "github.token", "unknown option"),
        ({"openstack": "mycloud"}, "openstack", "mapping"),
        ({"openstack": {"auth": {"password": OS_PASSWORD}}}, "openstack.auth", "auth_file"),
        ({"openstack": {"auth_file": "/nonexistent/auth"}}, "openstack.auth_file", "cannot read"),
        ({"openstack": {"auth_file": "TOKEN"}}, "openstack.auth_file", "mapping of auth options"),
        ({"openstack": {"cloud": ""}}, "openstack.cloud", "non-empty string"),
        ({"openstack": {"interface": "private"}}, "openstack.interface", "public, internal, admin"),
        ({"openstack": {"validate_certs": "yes"}}, "openstack.validate_certs", "true or false"),
        ({"openstack": {"api_timeout": 0}}, "openstack.api_timeout", "seconds"),
        ({"openstack": {"project": "x"}}, "openstack.project", "unknown option"),
        ({"mongodb": None}, "mongodb", "mapping"),
        ({"mongodb": {"uri": f"mongodb://u:{PASSWORD}@h/"}}, "mongodb.uri", "holds credentials"),
        ({"mongodb": {"uri": "mongodb://h/", "uri_file": "/x"}}, "mongodb", "one of uri and uri_file"),
        ({"mongodb": {"uri_file": "/nonexistent/uri"}}, "mongodb.uri_file", "cannot read"),
        ({"mongodb": {"uri": "mongodb://h/", "database": ""}}, "mongodb.database", "non-empty"),
        ({"mongodb": {"uri": "mongodb://h/", "claims_collection": 3}}, "mongodb.claims_collection", "non-empty"),
        ({"mongodb": {"uri": "mongodb://h/", "locks_collection": " "}}, "mongodb.locks_collection", "non-empty"),
        ({"mongodb": {"uri": "mongodb://h/", "messages_collection": []}}, "mongodb.messages_collection", "non"),
        ({"mongodb": {"uri": "mongodb://h/", "timeout": 60}}, "mongodb.timeout", "seconds"),
        ({"consumer": []}, "consumer", "mapping"),
        ({"consumer": {"concurrency": 0}}, "consumer.concurrency", "from 1 to 64"),
        ({"consumer": {"concurrency": 65}}, "consumer.concurrency", "from 1 to 64"),
        ({"consumer": {"concurrency": 2.5}}, "consumer.concurrency", "integer"),
        ({"consumer": {"poll_interval": 0.001}}, "consumer.poll_interval", "from 0.01 to 60"),
        ({"consumer": {"lease_ttl": 5}}, "consumer.lease_ttl", "from 10 to 3600"),
        ({"consumer": {"max_attempts": 101}}, "consumer.max_attempts", "from 1 to 100"),
        ({"consumer": {"retry_delay": -1}}, "consumer.retry_delay", "from 0 to 3600"),
        ({"consumer": {"retry_delay": 10, "retry_delay_max": 5}}, "consumer.retry_delay_max", "retry_delay"),
        ({"consumer": {"lock_ttl": 3601}}, "consumer.lock_ttl", "from 10 to 3600"),
        ({"consumer": {"lock_timeout": 0.5}}, "consumer.lock_timeout", "from 1 to 3600"),
        ({"consumer": {"drain_kombu_messages": "yes"}}, "consumer.drain_kombu_messages", "true or false"),
        ({"consumer": {"shutdown_timeout": 301}}, "consumer.shutdown_timeout", "from 0 to 300"),
        ({"consumer": {"lease": 10}}, "consumer.lease", "unknown option"),
        ({"metrics": {"port": 70000}}, "metrics.port", "from 0 to 65535"),
        ({"metrics": {"host": ""}}, "metrics.host", "non-empty"),
        ({"metrics": {"path": "/m"}}, "metrics.path", "unknown option"),
        ({"log": {"format": "xml"}}, "log.format", "text, json"),
        ({"log": {"level": "trace"}}, "log.level", "debug, info"),
        ({"colour": "blue"}, "colour", "unknown option"),
    ],
)
def test_errors_name_the_field(
    files: dict[str, pathlib.Path], change: dict[str, t.Any], field: str, message: str
) -> None:
    names = {"TOKEN": str(files["token"]), "KEY": str(files["key"])}
    github = change.get("github")
    if isinstance(github, dict):  # the placeholders name the fixture's files
        change = {**change, "github": {k: names.get(v, v) if isinstance(v, str) else v for k, v in github.items()}}
    openstack = change.get("openstack")
    if isinstance(openstack, dict) and openstack.get("auth_file") == "TOKEN":
        change = {**change, "openstack": {"auth_file": str(files["token"])}}
    with pytest.raises(ConfigError) as caught:
        parse_settings(config(files, **change), {})
    assert caught.value.field == field
    assert message in caught.value.message
    assert_no_secret(str(caught.value))


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("GHR_CONSUMER_METRICS_PORT", "http", "metrics.port"),
        ("GHR_CONSUMER_LOG_FORMAT", "xml", "log.format"),
        ("GHR_CONSUMER_LOG_LEVEL", "loud", "log.level"),
        ("GHR_CONSUMER_GITHUB_TOKEN_FILE", "/nonexistent/token", "github.token_file"),
        ("GHR_CONSUMER_MONGODB_URI_FILE", "/nonexistent/uri", "mongodb.uri_file"),
    ],
)
def test_bad_environment_values_name_the_field(
    files: dict[str, pathlib.Path], variable: str, value: str, field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(config(files), {variable: value})
    assert caught.value.field == field


def test_a_secret_file_that_is_not_yaml_is_not_quoted(files: dict[str, pathlib.Path]) -> None:
    files["auth"].write_text(f"password: {OS_PASSWORD}\n  bad: [indent\n")
    with pytest.raises(ConfigError) as caught:
        parse_settings(config(files, openstack={"auth_file": str(files["auth"])}), {})
    assert caught.value.field == "openstack.auth_file"
    assert_no_secret(str(caught.value))


@pytest.mark.parametrize("name", ["token", "uri"])
def test_empty_or_oversized_secret_files_are_refused(files: dict[str, pathlib.Path], name: str) -> None:
    field = {"token": "github.token_file", "uri": "mongodb.uri_file"}[name]
    files[name].write_text("\n")
    with pytest.raises(ConfigError, match="is empty") as caught:
        parse_settings(config(files), {})
    assert caught.value.field == field
    files[name].write_text("x" * 5000)
    with pytest.raises(ConfigError, match="more than 4096 bytes") as caught:
        parse_settings(config(files), {})
    assert caught.value.field == field


def test_a_token_file_with_two_lines_is_refused(files: dict[str, pathlib.Path]) -> None:
    files["token"].write_text(f"{TOKEN}\n{TOKEN}\n")
    with pytest.raises(ConfigError) as caught:
        parse_settings(config(files), {})
    assert caught.value.field == "github.token_file"
    assert_no_secret(str(caught.value))


def test_a_file_that_is_not_yaml(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "consumer.yml"
    path.write_text("pools: [")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_settings(path, {})
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.yml", {})


def test_the_check_command(
    files: dict[str, pathlib.Path], tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "consumer.yml"
    path.write_text(yaml.safe_dump(config(files, pools=[raw_pool(), raw_pool(name="large")])))
    assert consumer_service.main(["--config", str(path), "--check"]) == 0
    assert capsys.readouterr().out == "configuration OK: 2 pools\n"
    path.write_text(yaml.safe_dump(config(files, consumer={"concurrency": 0})))
    assert consumer_service.main(["--config", str(path), "--check"]) == 2
    captured = capsys.readouterr()
    assert "consumer.concurrency" in captured.err and captured.out == ""
    assert_no_secret(captured.err)
