# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The reactive consumer's settings: a YAML file, a few environment overrides, secrets from files.

The file (every key optional except controller_id, pools, the GitHub credentials and MongoDB)::

    controller_id: ci
    pools: [...]                  # the `pools` option of github_runner_pool
    github:
      api_url: https://api.github.com
      token_file: /etc/github-runners/github-token      # or app_id + app_private_key_file (+ app_installation_id)
      timeout: 30
      max_rate_limit_wait: 60
      write_burst: 80
      writes_per_minute: 80
    openstack:                    # the openstack.cloud option names
      cloud: mycloud              # a clouds.yaml entry (OS_CLIENT_CONFIG_FILE names the file)
      auth_file: /etc/github-runners/openstack-auth.yml  # the `auth` dict, kept out of this file
      auth_type: password
      region_name: RegionOne
      interface: public
      validate_certs: true
      ca_cert: /etc/ssl/certs/cloud-ca.pem
      api_timeout: 60
    mongodb:
      uri_file: /etc/github-runners/consumer-mongodb-uri  # or uri: (without a password)
      database: github_runners
      jobs_collection: jobs
      claims_collection: claims
      locks_collection: locks
      messages_collection: messages
      timeout: 5
      doorbell: false
    consumer:
      concurrency: 8
      poll_interval: 0.25
      lease_ttl: 120
      max_attempts: 5
      retry_delay: 5
      retry_delay_max: 600
      lock_ttl: 15
      lock_timeout: 30
      drain_kombu_messages: false
      shutdown_timeout: 10
    metrics: {host: 127.0.0.1, port: 9464}
    log: {format: json, level: info}

The environment overrides: MONGODB_URI, GHR_CONSUMER_LOG_FORMAT, GHR_CONSUMER_LOG_LEVEL,
GHR_CONSUMER_METRICS_HOST, GHR_CONSUMER_METRICS_PORT, GHR_CONSUMER_MONGODB_URI_FILE and
GHR_CONSUMER_GITHUB_TOKEN_FILE. Errors name the bad field, never a secret.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import typing as t
import urllib.parse

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import (
    PoolSpec,
    parse_controller_id,
    parse_pools,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import ConfigError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._openstack import CloudOptions
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.kombu_messages import (
    DEFAULT_MESSAGES_COLLECTION,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.mongo import (
    DEFAULT_DATABASE,
    DEFAULT_SERVER_TIMEOUT,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import (
    DEFAULT_CLAIMS_COLLECTION,
    DEFAULT_JOBS_COLLECTION,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.settings import (
    LOG_FORMATS,
    LOG_LEVELS,
    YAML_IMPORT_ERROR,
    SecretReader,
    boolean,
    choice,
    integer,
    load_yaml,
    mapping,
    mongodb_uri,
    number,
    read_secret_file,
    read_secret_text,
    seconds,
    text,
)

if YAML_IMPORT_ERROR is None:
    import yaml

DEFAULT_LOCKS_COLLECTION = "locks"
INTERFACES = ("public", "internal", "admin")
_TOP_KEYS = frozenset({"controller_id", "pools", "github", "openstack", "mongodb", "consumer", "metrics", "log"})
_GITHUB_KEYS = frozenset(
    {
        "api_url",
        "token_file",
        "app_id",
        "app_private_key_file",
        "app_installation_id",
        "timeout",
        "max_rate_limit_wait",
        "write_burst",
        "writes_per_minute",
    }
)
# `auth` is accepted only to refuse it with a pointer to auth_file: it holds passwords.
_OPENSTACK_KEYS = frozenset(
    {"cloud", "auth", "auth_file", "auth_type", "region_name", "interface", "validate_certs", "ca_cert", "api_timeout"}
)
_MONGODB_KEYS = frozenset(
    {
        "uri",
        "uri_file",
        "database",
        "jobs_collection",
        "claims_collection",
        "locks_collection",
        "messages_collection",
        "timeout",
        "doorbell",
    }
)
_CONSUMER_KEYS = frozenset(
    {
        "concurrency",
        "poll_interval",
        "lease_ttl",
        "max_attempts",
        "retry_delay",
        "retry_delay_max",
        "lock_ttl",
        "lock_timeout",
        "drain_kombu_messages",
        "shutdown_timeout",
    }
)
# Keys of an OpenStack `auth` dict whose values are secrets (password, application_credential_secret, token).
_SECRET_AUTH_KEYS = ("password", "secret", "token")


@dataclasses.dataclass(frozen=True)
class GithubSettings:
    api_url: str = "https://api.github.com"
    token: t.Optional[str] = dataclasses.field(default=None, repr=False)
    app_id: t.Optional[str] = None
    app_private_key: t.Optional[str] = dataclasses.field(default=None, repr=False)
    app_installation_id: t.Optional[int] = None
    timeout: float = 30.0
    max_rate_limit_wait: float = 60.0
    write_burst: int = 80
    writes_per_minute: float = 80.0


@dataclasses.dataclass(frozen=True)
class ConsumerSettings:
    controller_id: str
    pools: t.Tuple[PoolSpec, ...]
    github: GithubSettings
    openstack: CloudOptions
    mongodb_uri: str = dataclasses.field(repr=False)
    database: str = DEFAULT_DATABASE
    jobs_collection: str = DEFAULT_JOBS_COLLECTION
    claims_collection: str = DEFAULT_CLAIMS_COLLECTION
    locks_collection: str = DEFAULT_LOCKS_COLLECTION
    mongodb_timeout: float = DEFAULT_SERVER_TIMEOUT
    concurrency: int = 8
    poll_interval: float = 0.25
    doorbell: bool = False
    lease_ttl: float = 120.0
    max_attempts: int = 5
    retry_delay: float = 5.0
    retry_delay_max: float = 600.0
    lock_ttl: float = 15.0  # held for milliseconds: a consumer killed holding it blocks its pool this long
    lock_timeout: float = 30.0
    drain_kombu_messages: bool = False
    messages_collection: str = DEFAULT_MESSAGES_COLLECTION
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464
    log_format: str = "text"
    log_level: str = "info"
    shutdown_timeout: float = 10.0
    # Secret files that others than their owner can read (warned about at start).
    exposed_files: t.Tuple[str, ...] = ()

    @property
    def secrets(self) -> t.Tuple[str, ...]:
        """Every secret value the logs must never show: the GitHub credentials and the passwords."""
        values = [self.github.token, self.github.app_private_key, *_uri_passwords(self.mongodb_uri)]
        for key, value in (self.openstack.auth or {}).items():
            if isinstance(value, str) and any(word in str(key).lower() for word in _SECRET_AUTH_KEYS):
                values.append(value)
        return tuple(dict.fromkeys(value for value in values if value))


def load_settings(path: t.Union[str, pathlib.Path], env: t.Optional[t.Mapping[str, str]] = None) -> ConsumerSettings:
    """The settings of the YAML file at `path`, with the environment's overrides."""
    return parse_settings(load_yaml(path), os.environ if env is None else env)


def parse_settings(
    raw: object,
    env: t.Mapping[str, str],
    read_secret: t.Optional[SecretReader] = None,
) -> ConsumerSettings:
    """Settings from plain data and the environment; `read_secret(path, field)` reads a secret file."""
    read = read_secret or read_secret_file
    top = mapping(raw, "config", _TOP_KEYS)
    if "pools" not in top or not top["pools"]:
        raise ConfigError("pools", "must be a non-empty list of pools")
    # The environment may give the credentials alone, leaving their sections out.
    mongodb = mapping(top.get("mongodb", {} if env.get("MONGODB_URI") else None), "mongodb", _MONGODB_KEYS)
    consumer = mapping(top.get("consumer", {}), "consumer", _CONSUMER_KEYS)
    metrics = mapping(top.get("metrics", {}), "metrics", frozenset({"host", "port"}))
    log = mapping(top.get("log", {}), "log", frozenset({"format", "level"}))

    exposed: t.List[str] = []
    controller_id = parse_controller_id(top.get("controller_id"), path="controller_id")
    pools = tuple(parse_pools(top["pools"], path="pools"))
    github = _github(top.get("github"), env, read, exposed)
    openstack = _openstack(top.get("openstack", {}), read, exposed)
    uri = mongodb_uri(mongodb, env, read, exposed, "GHR_CONSUMER_MONGODB_URI_FILE")

    retry_delay = seconds(consumer.get("retry_delay", 5.0), "consumer.retry_delay", 0.0, 3600.0)
    retry_delay_max = seconds(consumer.get("retry_delay_max", 600.0), "consumer.retry_delay_max", 0.0, 86400.0)
    if retry_delay_max < retry_delay:
        raise ConfigError("consumer.retry_delay_max", f"must be at least retry_delay ({retry_delay:g})")
    return ConsumerSettings(
        controller_id=controller_id,
        pools=pools,
        github=github,
        openstack=openstack,
        mongodb_uri=uri,
        database=text(mongodb.get("database", DEFAULT_DATABASE), "mongodb.database"),
        jobs_collection=text(mongodb.get("jobs_collection", DEFAULT_JOBS_COLLECTION), "mongodb.jobs_collection"),
        claims_collection=text(
            mongodb.get("claims_collection", DEFAULT_CLAIMS_COLLECTION), "mongodb.claims_collection"
        ),
        locks_collection=text(mongodb.get("locks_collection", DEFAULT_LOCKS_COLLECTION), "mongodb.locks_collection"),
        messages_collection=text(
            mongodb.get("messages_collection", DEFAULT_MESSAGES_COLLECTION), "mongodb.messages_collection"
        ),
        mongodb_timeout=seconds(mongodb.get("timeout", DEFAULT_SERVER_TIMEOUT), "mongodb.timeout", 0.1, 30.0),
        concurrency=integer(consumer.get("concurrency", 8), "consumer.concurrency", 1, 64),
        poll_interval=seconds(consumer.get("poll_interval", 0.25), "consumer.poll_interval", 0.01, 60.0),
        doorbell=boolean(mongodb.get("doorbell", False), "mongodb.doorbell"),
        lease_ttl=seconds(consumer.get("lease_ttl", 120.0), "consumer.lease_ttl", 10.0, 3600.0),
        max_attempts=integer(consumer.get("max_attempts", 5), "consumer.max_attempts", 1, 100),
        retry_delay=retry_delay,
        retry_delay_max=retry_delay_max,
        lock_ttl=seconds(consumer.get("lock_ttl", 15.0), "consumer.lock_ttl", 10.0, 3600.0),
        lock_timeout=seconds(consumer.get("lock_timeout", 30.0), "consumer.lock_timeout", 1.0, 3600.0),
        drain_kombu_messages=boolean(consumer.get("drain_kombu_messages", False), "consumer.drain_kombu_messages"),
        shutdown_timeout=seconds(consumer.get("shutdown_timeout", 10.0), "consumer.shutdown_timeout", 0.0, 300.0),
        metrics_host=text(env.get("GHR_CONSUMER_METRICS_HOST") or metrics.get("host", "127.0.0.1"), "metrics.host"),
        metrics_port=integer(
            env.get("GHR_CONSUMER_METRICS_PORT") or metrics.get("port", 9464), "metrics.port", 0, 65535
        ),
        log_format=choice(env.get("GHR_CONSUMER_LOG_FORMAT") or log.get("format", "text"), "log.format", LOG_FORMATS),
        log_level=choice(env.get("GHR_CONSUMER_LOG_LEVEL") or log.get("level", "info"), "log.level", LOG_LEVELS),
        exposed_files=tuple(exposed),
    )


def _github(raw: object, env: t.Mapping[str, str], read: SecretReader, exposed: t.List[str]) -> GithubSettings:
    github = mapping({} if raw is None and env.get("GHR_CONSUMER_GITHUB_TOKEN_FILE") else raw, "github", _GITHUB_KEYS)
    token_file = env.get("GHR_CONSUMER_GITHUB_TOKEN_FILE") or github.get("token_file")
    app_id = github.get("app_id")
    token: t.Optional[str] = None
    key: t.Optional[str] = None
    installation: t.Optional[int] = None
    if token_file is not None and app_id is not None:
        raise ConfigError("github", "set one of token_file and app_id (with app_private_key_file)")
    if token_file is not None:
        token = read_secret_text(read, token_file, "github.token_file", exposed).strip()
        if any(c.isspace() for c in token):
            raise ConfigError("github.token_file", f"{token_file} must hold a single token on one line")
    elif app_id is not None:
        if isinstance(app_id, int) and not isinstance(app_id, bool):
            app_id = str(app_id)
        app_id = text(app_id, "github.app_id")
        if github.get("app_private_key_file") is None:
            raise ConfigError("github.app_private_key_file", "is required with app_id")
        key = read_secret_text(read, github["app_private_key_file"], "github.app_private_key_file", exposed)
        if "PRIVATE KEY" not in key:
            raise ConfigError("github.app_private_key_file", "must hold the App's private key in PEM form")
        if github.get("app_installation_id") is not None:
            installation = integer(github["app_installation_id"], "github.app_installation_id", 1, 2**63 - 1)
    else:
        raise ConfigError("github", "set token_file, or app_id and app_private_key_file")
    if token is not None and (github.get("app_private_key_file") is not None or "app_installation_id" in github):
        field = "github.app_private_key_file" if "app_private_key_file" in github else "github.app_installation_id"
        raise ConfigError(field, "is for a GitHub App (app_id), not with token_file")
    api_url = text(github.get("api_url", "https://api.github.com"), "github.api_url").rstrip("/")
    parts = urllib.parse.urlsplit(api_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise ConfigError("github.api_url", f"must be an http(s) URL without credentials, got {parts.hostname!r}")
    return GithubSettings(
        api_url=api_url,
        token=token,
        app_id=t.cast("t.Optional[str]", app_id),
        app_private_key=key,
        app_installation_id=installation,
        timeout=seconds(github.get("timeout", 30.0), "github.timeout", 1.0, 600.0),
        max_rate_limit_wait=seconds(github.get("max_rate_limit_wait", 60.0), "github.max_rate_limit_wait", 0.0, 3600.0),
        write_burst=integer(github.get("write_burst", 80), "github.write_burst", 1, 10000),
        writes_per_minute=number(github.get("writes_per_minute", 80.0), "github.writes_per_minute", 0.01, 10000.0),
    )


def _openstack(raw: object, read: SecretReader, exposed: t.List[str]) -> CloudOptions:
    openstack = mapping(raw, "openstack", _OPENSTACK_KEYS)
    if "auth" in openstack:
        raise ConfigError("openstack.auth", "holds secrets: put the auth dict in the YAML file of auth_file")
    auth: t.Optional[t.Mapping[str, t.Any]] = None
    if openstack.get("auth_file") is not None:
        auth = _auth_file(openstack["auth_file"], read, exposed)

    def optional(key: str) -> t.Optional[str]:
        value = openstack.get(key)
        return None if value is None else text(value, f"openstack.{key}")

    interface = openstack.get("interface")
    validate_certs = openstack.get("validate_certs")
    api_timeout = openstack.get("api_timeout")
    return CloudOptions(
        cloud=optional("cloud"),
        auth=auth,
        auth_type=optional("auth_type"),
        region_name=optional("region_name"),
        interface=None if interface is None else choice(interface, "openstack.interface", INTERFACES),
        validate_certs=None if validate_certs is None else boolean(validate_certs, "openstack.validate_certs"),
        ca_cert=optional("ca_cert"),
        api_timeout=None if api_timeout is None else seconds(api_timeout, "openstack.api_timeout", 1.0, 3600.0),
    )


def _auth_file(path: object, read: SecretReader, exposed: t.List[str]) -> t.Mapping[str, t.Any]:
    field = "openstack.auth_file"
    content = read_secret_text(read, path, field, exposed)
    if YAML_IMPORT_ERROR is not None:
        raise ConfigError(field, f"reading it needs PyYAML: {YAML_IMPORT_ERROR}")
    try:
        auth = yaml.safe_load(content)
    except yaml.YAMLError:
        # The parser's message quotes the file's text, which holds passwords.
        raise ConfigError(field, f"{path} is not valid YAML") from None
    if not isinstance(auth, dict) or not auth or not all(isinstance(key, str) for key in auth):
        raise ConfigError(field, f"{path} must hold a mapping of auth options (auth_url, username, password, ...)")
    return auth


def _uri_passwords(uri: str) -> t.List[str]:
    """The password of a connection string, as written and decoded (either may reach a log)."""
    userinfo, at, _rest = urllib.parse.urlsplit(uri).netloc.rpartition("@")
    password = userinfo.partition(":")[2] if at else ""
    return [password, urllib.parse.unquote(password)] if password else []
