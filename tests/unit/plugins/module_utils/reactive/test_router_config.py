"""The webhook router's settings: YAML, environment overrides, secret files."""

from __future__ import annotations

import pathlib
import typing as t

import pytest
import yaml

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import ConfigError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.router_config import (
    load_settings,
    parse_settings,
)


@pytest.fixture
def files(tmp_path: pathlib.Path) -> dict[str, pathlib.Path]:
    secret = tmp_path / "webhook-secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    old = tmp_path / "old-secret"
    old.write_text("older")
    old.chmod(0o644)
    uri = tmp_path / "mongodb-uri"
    uri.write_text("mongodb://router:pw@127.0.0.1:27017/\n")
    uri.chmod(0o600)
    return {"secret": secret, "old": old, "uri": uri}


def config(files: dict[str, pathlib.Path], **overrides: t.Any) -> dict[str, t.Any]:
    return {
        "webhook_secret_files": [str(files["secret"]), str(files["old"])],
        "mongodb": {"uri_file": str(files["uri"])},
        "pools": [{"name": "small", "labels": ["linux", "small"]}],
        **overrides,
    }


def test_defaults_and_secrets_from_files(files: dict[str, pathlib.Path]) -> None:
    settings = parse_settings(config(files), {})
    assert settings.secrets == (b"s3cret", b"older")
    assert settings.mongodb_uri == "mongodb://router:pw@127.0.0.1:27017/"
    assert (settings.host, settings.port, settings.max_body_bytes) == ("127.0.0.1", 8080, 1024 * 1024)
    assert (settings.database, settings.jobs_collection, settings.log_format) == ("github_runners", "jobs", "text")
    assert settings.exposed_files == (str(files["old"]),)  # 0644: warned about at start
    assert "s3cret" not in repr(settings) and "pw@" not in repr(settings)


def test_a_yaml_file_and_the_environment(files: dict[str, pathlib.Path], tmp_path: pathlib.Path) -> None:
    path = tmp_path / "router.yml"
    body = config(files, listen={"host": "::1", "port": 9000}, log={"format": "json", "level": "debug"})
    body["pools"][0]["match"] = "repository.owner.login == 'octo-org'"
    path.write_text(yaml.safe_dump(body))
    settings = load_settings(path, {})
    assert (settings.host, settings.port, settings.log_format, settings.log_level) == ("::1", 9000, "json", "debug")
    assert settings.routes[0].matcher is not None
    assert settings.routes[0].matcher.search({"repository": {"owner": {"login": "octo-org"}}}) is True
    env = {
        "GHR_ROUTER_HOST": "0.0.0.0",
        "GHR_ROUTER_PORT": "9100",
        "GHR_ROUTER_LOG_FORMAT": "text",
        "GHR_ROUTER_WEBHOOK_SECRET_FILES": f"{files['old']}",
        "MONGODB_URI": "mongodb://other/",
    }
    settings = load_settings(path, env)
    assert (settings.host, settings.port, settings.log_format) == ("0.0.0.0", 9100, "text")
    assert (settings.secrets, settings.mongodb_uri) == ((b"older",), "mongodb://other/")


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"webhook_secret_files": []}, "webhook_secret_files", "at least one file"),
        ({"webhook_secret_files": ["/nonexistent/secret"]}, "webhook_secret_files[0]", "cannot read"),
        ({"pools": []}, "pools", "non-empty list"),
        ({"pools": [{"name": "Small", "labels": ["x"]}]}, "pools[0].name", ""),
        ({"pools": [{"name": "a", "labels": ["x"]}, {"name": "a", "labels": ["y"]}]}, "pools[1].name", "duplicate"),
        ({"pools": [{"name": "a", "labels": []}]}, "pools[0].labels", "non-empty"),
        ({"pools": [{"name": "a", "labels": ["x"], "match": "a ==="}]}, "pools[0].match", "JMESPath"),
        ({"pools": [{"name": "a", "labels": ["x"], "priority": "high"}]}, "pools[0].priority", "integer"),
        ({"pools": [{"name": "a", "labels": ["x"], "flavor": "m1"}]}, "pools[0].flavor", "unknown option"),
        ({"mongodb": {"uri": "mongodb://u:p@h/"}}, "mongodb.uri", "holds credentials"),
        ({"mongodb": {"uri": "mongodb://h/", "uri_file": "/x"}}, "mongodb", "one of uri and uri_file"),
        ({"listen": {"port": 70000}}, "listen.port", "from 0 to 65535"),
        ({"max_body_bytes": 10}, "max_body_bytes", "from 1024"),
        ({"log": {"format": "xml"}}, "log.format", "text, json"),
        ({"colour": "blue"}, "colour", "unknown option"),
    ],
)
def test_errors_name_the_field(
    files: dict[str, pathlib.Path], change: dict[str, t.Any], field: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(config(files, **change), {})
    assert caught.value.field == field
    assert message in caught.value.message
    assert "pw@" not in str(caught.value)


def test_an_empty_secret_file_is_refused(files: dict[str, pathlib.Path]) -> None:
    files["secret"].write_text("\n")
    with pytest.raises(ConfigError, match=r"webhook_secret_files\[0\]: .* is empty"):
        parse_settings(config(files), {})


def test_a_file_that_is_not_yaml(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "router.yml"
    path.write_text("pools: [")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_settings(path, {})
