# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The webhook router's settings: a YAML file, a few environment overrides, secrets from files.

The file (every key optional except the secrets, MongoDB and the pools)::

    listen: {host: 127.0.0.1, port: 8080}
    max_body_bytes: 1048576
    request_timeout: 8            # seconds; GitHub gives up after 10
    shutdown_timeout: 10          # seconds for requests in flight after SIGTERM
    webhook_secret_files: [/etc/github-runners/webhook-secret]   # several while rotating
    mongodb:
      uri_file: /etc/github-runners/mongodb-uri                  # or uri: (without a password)
      database: github_runners
      jobs_collection: jobs
      doorbell: false
      timeout: 5
    pools:
      - name: large
        labels: [linux, x64, large]
        priority: 10              # higher first; equal priorities in file order
        match: "repository.owner.login == 'octo-org'"   # JMESPath over the payload
    log: {format: json, level: info}

The environment overrides: GHR_ROUTER_HOST, GHR_ROUTER_PORT, GHR_ROUTER_LOG_FORMAT,
GHR_ROUTER_LOG_LEVEL, GHR_ROUTER_WEBHOOK_SECRET_FILES (comma-separated paths),
GHR_ROUTER_MONGODB_URI_FILE, and MONGODB_URI. Errors name the bad field, never a secret.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import parse_pool_name
from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import ConfigError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.mongo import (
    DEFAULT_DATABASE,
    DEFAULT_SERVER_TIMEOUT,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import DEFAULT_JOBS_COLLECTION
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.router import (
    DEFAULT_MAX_BODY_BYTES,
    PoolRoute,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.settings import (
    LOG_FORMATS,
    LOG_LEVELS,
    SecretReader,
    boolean,
    choice,
    integer,
    load_yaml,
    mapping,
    mongodb_uri,
    read_secret_file,
    seconds,
    text,
)

JMESPATH_IMPORT_ERROR: t.Optional[str]
try:
    import jmespath
    import jmespath.exceptions

    JMESPATH_IMPORT_ERROR = None
except ImportError as exc:  # reported when a pool has a match expression
    JMESPATH_IMPORT_ERROR = str(exc)
_TOP_KEYS = frozenset(
    {
        "listen",
        "max_body_bytes",
        "request_timeout",
        "shutdown_timeout",
        "webhook_secret_files",
        "mongodb",
        "pools",
        "log",
    }
)
_POOL_KEYS = frozenset({"name", "labels", "priority", "match"})


@dataclasses.dataclass(frozen=True)
class RouterSettings:
    secrets: t.Tuple[bytes, ...] = dataclasses.field(repr=False)
    mongodb_uri: str = dataclasses.field(repr=False)
    routes: t.Tuple[PoolRoute, ...]
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    request_timeout: float = 8.0
    shutdown_timeout: float = 10.0
    database: str = DEFAULT_DATABASE
    jobs_collection: str = DEFAULT_JOBS_COLLECTION
    doorbell: bool = False  # ring the consumers' doorbell for every queued job
    mongodb_timeout: float = DEFAULT_SERVER_TIMEOUT
    log_format: str = "text"
    log_level: str = "info"
    # Secret files that others than their owner can read (warned about at start).
    exposed_files: t.Tuple[str, ...] = ()


def load_settings(path: t.Union[str, pathlib.Path], env: t.Optional[t.Mapping[str, str]] = None) -> RouterSettings:
    """The settings of the YAML file at `path`, with the environment's overrides."""
    return parse_settings(load_yaml(path), os.environ if env is None else env)


def parse_settings(
    raw: object,
    env: t.Mapping[str, str],
    read_secret: t.Optional[SecretReader] = None,
) -> RouterSettings:
    """Settings from plain data and the environment; `read_secret(path, field)` reads a secret file."""
    read = read_secret or read_secret_file
    top = mapping(raw, "config", _TOP_KEYS)
    listen = mapping(top.get("listen", {}), "listen", frozenset({"host", "port"}))
    mongodb = mapping(
        top.get("mongodb"),
        "mongodb",
        frozenset({"uri", "uri_file", "database", "jobs_collection", "timeout", "doorbell"}),
    )
    log = mapping(top.get("log", {}), "log", frozenset({"format", "level"}))

    exposed: t.List[str] = []
    secret_files: object = top.get("webhook_secret_files")
    secrets_field = "webhook_secret_files"
    if env.get("GHR_ROUTER_WEBHOOK_SECRET_FILES"):
        secret_files = [p.strip() for p in env["GHR_ROUTER_WEBHOOK_SECRET_FILES"].split(",") if p.strip()]
        secrets_field = "GHR_ROUTER_WEBHOOK_SECRET_FILES"
    if not isinstance(secret_files, list) or not secret_files:
        raise ConfigError(secrets_field, "must list at least one file holding a webhook secret")
    secrets: t.List[bytes] = []
    for index, file in enumerate(secret_files):
        field = f"{secrets_field}[{index}]"
        value, is_exposed = read(text(file, field), field)
        secrets.append(value)
        if is_exposed:
            exposed.append(str(file))

    uri = mongodb_uri(mongodb, env, read, exposed, "GHR_ROUTER_MONGODB_URI_FILE")
    return RouterSettings(
        secrets=tuple(secrets),
        mongodb_uri=uri,
        routes=_routes(top.get("pools")),
        host=text(env.get("GHR_ROUTER_HOST") or listen.get("host", "127.0.0.1"), "listen.host"),
        port=integer(env.get("GHR_ROUTER_PORT") or listen.get("port", 8080), "listen.port", 0, 65535),
        max_body_bytes=integer(top.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES), "max_body_bytes", 1024, 64 * 2**20),
        request_timeout=seconds(top.get("request_timeout", 8.0), "request_timeout", 0.1, 30.0),
        shutdown_timeout=seconds(top.get("shutdown_timeout", 10.0), "shutdown_timeout", 0.0, 300.0),
        database=text(mongodb.get("database", DEFAULT_DATABASE), "mongodb.database"),
        jobs_collection=text(mongodb.get("jobs_collection", DEFAULT_JOBS_COLLECTION), "mongodb.jobs_collection"),
        doorbell=boolean(mongodb.get("doorbell", False), "mongodb.doorbell"),
        mongodb_timeout=seconds(mongodb.get("timeout", DEFAULT_SERVER_TIMEOUT), "mongodb.timeout", 0.1, 30.0),
        log_format=choice(env.get("GHR_ROUTER_LOG_FORMAT") or log.get("format", "text"), "log.format", LOG_FORMATS),
        log_level=choice(env.get("GHR_ROUTER_LOG_LEVEL") or log.get("level", "info"), "log.level", LOG_LEVELS),
        exposed_files=tuple(exposed),
    )


def _routes(raw: object) -> t.Tuple[PoolRoute, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError("pools", "must be a non-empty list of pools")
    routes: t.List[PoolRoute] = []
    seen: t.Set[str] = set()
    for index, item in enumerate(raw):
        path = f"pools[{index}]"
        pool = mapping(item, path, _POOL_KEYS)
        name = parse_pool_name(pool.get("name"), path=f"{path}.name")
        if name in seen:
            raise ConfigError(f"{path}.name", f"duplicate pool name {name!r}")
        seen.add(name)
        labels = pool.get("labels")
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x.strip() for x in labels):
            raise ConfigError(f"{path}.labels", "must be a non-empty list of labels")
        expression = pool.get("match")
        matcher = None
        if expression is not None:
            matcher = _compile(text(expression, f"{path}.match"), f"{path}.match")
        routes.append(
            PoolRoute(
                pool=name,
                labels=tuple(labels),
                priority=integer(pool.get("priority", 0), f"{path}.priority", -1000, 1000),
                expression=None if expression is None else str(expression),
                matcher=matcher,
            )
        )
    return tuple(routes)


def _compile(expression: str, field: str) -> t.Any:
    if JMESPATH_IMPORT_ERROR is not None:
        raise ConfigError(field, f"needs the jmespath library: {JMESPATH_IMPORT_ERROR}")
    try:
        return jmespath.compile(expression)
    except jmespath.exceptions.JMESPathError as exc:
        raise ConfigError(field, f"is not a JMESPath expression: {str(exc)[:300]}") from None
