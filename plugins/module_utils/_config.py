# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pool specification: typed, validated, with errors that name the bad field.

`parse_pool` takes the plain data a user writes (YAML, module options) and
returns a `PoolSpec` or raises `ConfigError` whose `field` is the dotted path
of the first bad field, e.g. ``pools[1].max_runners``. Options left out or set
to ``None`` (as Ansible passes unset sub-options) take their defaults.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import ConfigError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import PoolTiming, Scope, ScopeKind

#: Creations and deletions a pool runs at once, unless its create_concurrency says otherwise.
DEFAULT_CONCURRENCY = 4
#: The most runners a pool may have (`max_runners`): a typo must not become a fleet.
MAX_RUNNERS_LIMIT = 1000
#: Runners a pool creates in one reconcile at most, unless its max_create_per_run says otherwise.
DEFAULT_MAX_CREATE_PER_RUN = 20
#: Outdated idle runners a pool replaces in one reconcile at most, unless its max_replace_per_run says otherwise.
DEFAULT_MAX_REPLACE_PER_RUN = 5


@dataclasses.dataclass(frozen=True)
class RunnerSoftware:
    """Where the VM finds the runner: a pre-installed directory or a tarball to fetch."""

    directory: str = "/opt/actions-runner"
    tarball_url: t.Optional[str] = None
    tarball_sha256: t.Optional[str] = None


@dataclasses.dataclass(frozen=True)
class UserDataOptions:
    extra_env: t.Mapping[str, str] = dataclasses.field(default_factory=dict)
    pre_job_script: t.Optional[str] = None
    http_proxy: t.Optional[str] = None
    https_proxy: t.Optional[str] = None
    no_proxy: t.Optional[str] = None
    runner: RunnerSoftware = dataclasses.field(default_factory=RunnerSoftware)
    runner_user: str = "runner"


@dataclasses.dataclass(frozen=True)
class PoolSpec:
    name: str
    scope: Scope
    labels: t.Tuple[str, ...]
    flavor: str
    image: str
    # Names or ids, or one of NETWORKS_NONE / NETWORKS_AUTO alone (see `network_choice`).
    networks: t.Tuple[str, ...]
    min_idle: int = 0
    max_runners: int = 10
    runner_group: t.Optional[str] = None  # name; None = the default group
    security_groups: t.Tuple[str, ...] = ()
    key_name: t.Optional[str] = None
    boot_from_volume: bool = False
    volume_size: t.Optional[int] = None  # GiB, with boot_from_volume
    availability_zone: t.Optional[str] = None
    user_data: UserDataOptions = dataclasses.field(default_factory=UserDataOptions)
    timing: PoolTiming = dataclasses.field(default_factory=PoolTiming)
    create_concurrency: int = DEFAULT_CONCURRENCY
    # Creations per reconcile at most; the rest waits for the next run (a guard against runaway sizes).
    max_create_per_run: int = DEFAULT_MAX_CREATE_PER_RUN
    # Outdated idle runners (see _drift) replaced per reconcile at most.
    max_replace_per_run: int = DEFAULT_MAX_REPLACE_PER_RUN
    # Seconds before the first retry after a failed creation, doubling per failed round up to the max.
    creation_backoff: float = 60.0
    creation_backoff_max: float = 1800.0
    # Where the pool sits in the configuration (e.g. ``pools[2]``), for errors that name a field.
    path: str = dataclasses.field(default="pools[0]", compare=False)

    def field(self, name: str) -> str:
        """The path of one of the pool's fields, e.g. ``pools[2].image``."""
        return f"{self.path}.{name}"


# Runner name = `<controller_id>-<pool>-<12 hex>`: 20 + 1 + 20 + 1 + 12 = 54, within
# GitHub's 64 characters for a runner name.
NAME_MAX = 20
_NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
# GitHub: owner/org logins are alphanumeric with single inner hyphens, at most 39
# characters; repository names use letters, digits, `.`, `_` and `-`, at most 100.
_LOGIN_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,37}[A-Za-z0-9])?")
_REPO_RE = re.compile(r"[A-Za-z0-9._-]{1,100}")
_ENTERPRISE_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,98}[A-Za-z0-9])?")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})

#: The generate-jitconfig API takes between 1 and 100 labels.
MAX_LABELS = 100
MAX_CREATE_CONCURRENCY = 32
# Nova accepts at most 65535 bytes of base64 user data; these caps keep the
# rendered script (plus a JIT config of a few KiB) well under that.
MAX_PRE_JOB_SCRIPT = 16 * 1024
MAX_EXTRA_ENV_BYTES = 8 * 1024
# Variables the cloud-init script sets itself; a user value would break it.
_RESERVED_ENV = frozenset({"RUNNER_DIR", "ACTIONS_RUNNER_HOOK_JOB_STARTED"})
_PROXY_ENV = frozenset({"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"})

#: `networks: none` boots without a network, `networks: auto` lets Nova pick or allocate one
#: (compute API 2.37); neither needs Neutron look-ups.
NETWORKS_NONE = "none"
NETWORKS_AUTO = "auto"
_NETWORK_CHOICES = (NETWORKS_NONE, NETWORKS_AUTO)
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

_SCOPE_KEYS = ("repository", "organization", "enterprise")
_POOL_KEYS = frozenset(
    {
        "name",
        *_SCOPE_KEYS,
        "labels",
        "runner_group",
        "min_idle",
        "max_runners",
        "flavor",
        "image",
        "networks",
        "security_groups",
        "key_name",
        "boot_from_volume",
        "volume_size",
        "availability_zone",
        "user_data",
        "bootstrap_timeout",
        "offline_grace",
        "registration_grace",
        "max_lifetime",
        "create_concurrency",
        "max_create_per_run",
        "max_replace_per_run",
        "creation_backoff",
        "creation_backoff_max",
    }
)
_USER_DATA_KEYS = frozenset(
    {"extra_env", "pre_job_script", "http_proxy", "https_proxy", "no_proxy", "runner", "runner_user"}
)
_RUNNER_KEYS = frozenset({"directory", "tarball_url", "tarball_sha256"})


def parse_pool_name(value: object, *, path: str = "name") -> str:
    """A pool name: lower-case letters, digits and inner hyphens, at most 20 characters."""
    return _short_name(value, path)


def parse_repository(value: object, *, path: str = "repository") -> str:
    """A repository as GitHub names it: `owner/repo`."""
    text = _text(value, path)
    owner, _slash, repo = text.partition("/")
    if not (_LOGIN_RE.fullmatch(owner) and _REPO_RE.fullmatch(repo)) or repo in {".", ".."}:
        raise ConfigError(path, f"must be owner/repo, got {text!r}")
    return text


def parse_controller_id(value: object, *, path: str = "controller_id") -> str:
    """A controller id: lower-case letters and digits, at most 20 characters.

    No hyphen: runner names are `<controller>-<pool>-<hex>` and pool names may hold
    hyphens, so a hyphen in the id would let controller `a` with pool `b-c` and
    controller `a-b` with pool `c` claim each other's runners.
    """
    name = _short_name(value, path)
    if "-" in name:
        raise ConfigError(path, f"must not contain '-' (got {name!r}): runner names start with '<controller_id>-'")
    return name


def parse_pools(raw_list: object, *, path: str = "pools") -> t.List[PoolSpec]:
    """Every pool of a list, with names unique across the list."""
    if not isinstance(raw_list, (list, tuple)):
        raise ConfigError(path, "must be a list of pools")
    pools: t.List[PoolSpec] = []
    seen: t.Dict[str, int] = {}
    for index, raw in enumerate(raw_list):
        item_path = f"{path}[{index}]"
        pool = parse_pool(raw, path=item_path)
        if pool.name in seen:
            raise ConfigError(
                f"{item_path}.name", f"duplicate pool name {pool.name!r} (also {path}[{seen[pool.name]}])"
            )
        seen[pool.name] = index
        pools.append(pool)
    return pools


def parse_pool(raw: object, *, path: str = "pools[0]") -> PoolSpec:
    """One pool from plain data; raises `ConfigError` naming the first bad field."""
    section = _mapping(raw, path, _POOL_KEYS)
    name = parse_pool_name(section.get("name"), path=f"{path}.name")
    min_idle = _int(section.get("min_idle"), f"{path}.min_idle", default=0, minimum=0)
    # A min_idle above max_runners is capped by it (the result warns), not refused.
    max_runners = _int(
        section.get("max_runners"), f"{path}.max_runners", default=10, minimum=1, maximum=MAX_RUNNERS_LIMIT
    )
    boot_from_volume = _bool(section.get("boot_from_volume"), f"{path}.boot_from_volume", default=False)
    volume_size = _optional_int(section.get("volume_size"), f"{path}.volume_size", minimum=1)
    if boot_from_volume and volume_size is None:
        raise ConfigError(f"{path}.volume_size", "is required with boot_from_volume: true (GiB)")
    if volume_size is not None and not boot_from_volume:
        raise ConfigError(f"{path}.volume_size", "is only used with boot_from_volume: true")
    backoff = _duration(section, "creation_backoff", 60.0, path)
    backoff_max = _duration(section, "creation_backoff_max", 1800.0, path)
    if backoff_max < backoff:
        raise ConfigError(f"{path}.creation_backoff_max", f"must be >= creation_backoff ({backoff:g}s)")
    return PoolSpec(
        name=name,
        scope=_scope(section, path),
        labels=_labels(section.get("labels"), f"{path}.labels"),
        flavor=_text(section.get("flavor"), f"{path}.flavor"),
        image=_text(section.get("image"), f"{path}.image"),
        networks=_networks(section.get("networks"), f"{path}.networks"),
        min_idle=min_idle,
        max_runners=max_runners,
        runner_group=_optional_text(section.get("runner_group"), f"{path}.runner_group"),
        security_groups=_names(section.get("security_groups"), f"{path}.security_groups", required=False),
        key_name=_optional_text(section.get("key_name"), f"{path}.key_name"),
        boot_from_volume=boot_from_volume,
        volume_size=volume_size,
        availability_zone=_optional_text(section.get("availability_zone"), f"{path}.availability_zone"),
        user_data=_user_data(section.get("user_data"), f"{path}.user_data"),
        timing=_timing(section, path),
        create_concurrency=_int(
            section.get("create_concurrency"),
            f"{path}.create_concurrency",
            default=DEFAULT_CONCURRENCY,
            minimum=1,
            maximum=MAX_CREATE_CONCURRENCY,
        ),
        max_create_per_run=_int(
            section.get("max_create_per_run"),
            f"{path}.max_create_per_run",
            default=DEFAULT_MAX_CREATE_PER_RUN,
            minimum=1,
            maximum=MAX_RUNNERS_LIMIT,
        ),
        max_replace_per_run=_int(
            section.get("max_replace_per_run"),
            f"{path}.max_replace_per_run",
            default=DEFAULT_MAX_REPLACE_PER_RUN,
            minimum=0,
            maximum=MAX_RUNNERS_LIMIT,
        ),
        creation_backoff=backoff,
        creation_backoff_max=backoff_max,
        path=path,
    )


def is_uuid(value: str) -> bool:
    """Whether an image, network or security group reference is an id (used as is) rather than a name (looked up)."""
    return _UUID_RE.fullmatch(value) is not None


def network_choice(networks: t.Sequence[str]) -> t.Optional[str]:
    """`none` or `auto` when the pool gives one of them instead of networks, else None."""
    return networks[0] if len(networks) == 1 and networks[0] in _NETWORK_CHOICES else None


def parse_duration(value: object, path: str) -> float:
    """Seconds from a number or a string such as ``"90"``, ``"30s"``, ``"15m"``, ``"2h"``, ``"1h30m"``, ``"1d"``."""
    message = 'must be a number of seconds or a duration such as "30s", "15m", "2h" or "1h30m"'
    if isinstance(value, bool):
        raise ConfigError(path, message)
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            parts = _DURATION_PART_RE.findall(text)
            if not text or "".join(number + unit for number, unit in parts) != text:
                raise ConfigError(path, message) from None
            seconds = sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)
    else:
        raise ConfigError(path, message)
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(path, "must be a finite duration >= 0")
    return seconds


# --- sections -----------------------------------------------------------------


class _Section:
    """A mapping being read, with the path of its fields."""

    def __init__(self, raw: t.Mapping[str, object], path: str) -> None:
        self._raw = raw
        self.path = path

    def get(self, key: str) -> object:
        return self._raw.get(key)


def _mapping(raw: object, path: str, known: t.AbstractSet[str]) -> _Section:
    if not isinstance(raw, t.Mapping):
        raise ConfigError(path, "must be a mapping")
    for key in raw:
        if not isinstance(key, str):
            raise ConfigError(path, f"keys must be strings, got {key!r}")
        if key not in known:
            raise ConfigError(f"{path}.{key}", f"unknown option (known: {', '.join(sorted(known))})")
    return _Section(t.cast("t.Mapping[str, object]", raw), path)


def _scope(section: _Section, path: str) -> Scope:
    given = [key for key in _SCOPE_KEYS if section.get(key) is not None]
    if len(given) != 1:
        found = f" (found {', '.join(given)})" if given else ""
        raise ConfigError(path, f"set exactly one of repository, organization or enterprise{found}")
    return parse_scope(given[0], section.get(given[0]), f"{path}.{given[0]}")


def parse_scope(kind: object, value: object, path: str) -> Scope:
    """A scope from its kind (``repository``, ``organization``, ``enterprise``) and name."""
    if kind not in _SCOPE_KEYS:
        raise ConfigError(path, f"must be one of {', '.join(_SCOPE_KEYS)}, got {kind!r}")
    text = _text(value, path)
    if kind == "repository":
        return Scope(ScopeKind.REPOSITORY, parse_repository(text, path=path))
    if kind == "organization":
        if not _LOGIN_RE.fullmatch(text):
            raise ConfigError(path, f"must be an organization login, got {text!r}")
        return Scope(ScopeKind.ORGANIZATION, text)
    if not _ENTERPRISE_RE.fullmatch(text):
        raise ConfigError(path, f"must be an enterprise slug, got {text!r}")
    return Scope(ScopeKind.ENTERPRISE, text)


def _labels(value: object, path: str) -> t.Tuple[str, ...]:
    # JIT runners get exactly the labels of the generate-jitconfig call: GitHub adds
    # no default `self-hosted`/OS labels, so the pool lists every label jobs ask for.
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(path, "must be a non-empty list of labels")
    if len(value) > MAX_LABELS:
        raise ConfigError(path, f"at most {MAX_LABELS} labels")
    labels: t.List[str] = []
    seen: t.Dict[str, int] = {}
    for index, item in enumerate(value):
        item_path = f"{path}[{index}]"
        if not isinstance(item, str):
            raise ConfigError(item_path, f"must be a string, got {type(item).__name__} {item!r}")
        label = _text(item, item_path)
        if label[:1] in "[{" or label[-1:] in "]}" or label[:1] in "'\"":
            # A list or mapping written as text (a Jinja expression that rendered to its repr).
            raise ConfigError(item_path, f"must be a plain label, got {label!r}: give labels as a YAML list of strings")
        if "," in label or label != label.strip():
            raise ConfigError(item_path, "must not contain commas or surrounding spaces")
        folded = label.casefold()  # GitHub labels are case-insensitive
        if folded in seen:
            raise ConfigError(item_path, f"duplicate label {label!r} (labels are case-insensitive)")
        seen[folded] = index
        labels.append(label)
    return tuple(labels)


def _duration(section: _Section, key: str, default: float, path: str) -> float:
    value = section.get(key)
    return default if value is None else parse_duration(value, f"{path}.{key}")


def _timing(section: _Section, path: str) -> PoolTiming:
    default = PoolTiming()
    timing = PoolTiming(
        bootstrap_timeout=_duration(section, "bootstrap_timeout", default.bootstrap_timeout, path),
        offline_grace=_duration(section, "offline_grace", default.offline_grace, path),
        registration_grace=_duration(section, "registration_grace", default.registration_grace, path),
        max_lifetime=_duration(section, "max_lifetime", default.max_lifetime, path),
    )
    if timing.bootstrap_timeout <= 0:
        raise ConfigError(f"{path}.bootstrap_timeout", "must be > 0")
    # A lifetime shorter than the boot window would expire runners before they can work.
    if timing.max_lifetime <= timing.bootstrap_timeout:
        raise ConfigError(f"{path}.max_lifetime", f"must be > bootstrap_timeout ({timing.bootstrap_timeout:g}s)")
    return timing


def _user_data(value: object, path: str) -> UserDataOptions:
    if value is None:
        return UserDataOptions()
    section = _mapping(value, path, _USER_DATA_KEYS)
    default = UserDataOptions()
    runner_user = section.get("runner_user")
    pre_job_script = _optional_text(section.get("pre_job_script"), f"{path}.pre_job_script")
    if pre_job_script is not None and len(pre_job_script.encode()) > MAX_PRE_JOB_SCRIPT:
        raise ConfigError(f"{path}.pre_job_script", f"must be at most {MAX_PRE_JOB_SCRIPT} bytes")
    return UserDataOptions(
        extra_env=_extra_env(section.get("extra_env"), f"{path}.extra_env"),
        pre_job_script=pre_job_script,
        http_proxy=_proxy_url(section.get("http_proxy"), f"{path}.http_proxy"),
        https_proxy=_proxy_url(section.get("https_proxy"), f"{path}.https_proxy"),
        no_proxy=_no_proxy(section.get("no_proxy"), f"{path}.no_proxy"),
        runner=_runner_software(section.get("runner"), f"{path}.runner"),
        runner_user=default.runner_user if runner_user is None else _posix_user(runner_user, f"{path}.runner_user"),
    )


def _extra_env(value: object, path: str) -> t.Dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, t.Mapping):
        raise ConfigError(path, "must be a mapping of variable names to values")
    env: t.Dict[str, str] = {}
    size = 0
    for key in sorted(value, key=str):
        key_path = f"{path}.{key}"
        if not isinstance(key, str) or not _ENV_NAME_RE.fullmatch(key):
            raise ConfigError(key_path, "must be a shell variable name ([A-Za-z_][A-Za-z0-9_]*)")
        if key in _RESERVED_ENV or key.upper().startswith("GHR_"):
            raise ConfigError(key_path, "is set by the runner bootstrap script and cannot be overridden")
        if key.upper() in _PROXY_ENV:
            raise ConfigError(key_path, f"use user_data.{key.lower()} instead")
        item = value[key]
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise ConfigError(key_path, "must be a string (quote booleans)")
        text = str(item)
        if "\0" in text:
            raise ConfigError(key_path, "must not contain NUL characters")
        size += len(key) + len(text.encode())
        env[key] = text
    if size > MAX_EXTRA_ENV_BYTES:
        raise ConfigError(path, f"must total at most {MAX_EXTRA_ENV_BYTES} bytes")
    return env


def _proxy_url(value: object, path: str) -> t.Optional[str]:
    url = _optional_text(value, path)
    if url is not None and not re.fullmatch(r"https?://[^\s'\"]+", url):
        raise ConfigError(path, "must be an http:// or https:// URL without spaces or quotes")
    return url


def _no_proxy(value: object, path: str) -> t.Optional[str]:
    if value is None:
        return None
    hosts = (
        [_text(item, f"{path}[{i}]") for i, item in enumerate(value)]
        if isinstance(value, (list, tuple))
        else [_text(value, path)]
    )
    text = ",".join(hosts)
    if re.search(r"[\s'\"]", text):
        raise ConfigError(path, "must be a comma-separated list of hosts without spaces or quotes")
    return text


def _runner_software(value: object, path: str) -> RunnerSoftware:
    if value is None:
        return RunnerSoftware()
    section = _mapping(value, path, _RUNNER_KEYS)
    directory = _optional_text(section.get("directory"), f"{path}.directory") or RunnerSoftware.directory
    if not directory.startswith("/") or re.search(r"[\s'\"\\$`]", directory):
        raise ConfigError(f"{path}.directory", "must be an absolute path without spaces, quotes or `$`")
    url = _optional_text(section.get("tarball_url"), f"{path}.tarball_url")
    sha256 = _optional_text(section.get("tarball_sha256"), f"{path}.tarball_sha256")
    if url is not None:
        if not re.fullmatch(r"https?://[^\s'\"]+", url):
            raise ConfigError(f"{path}.tarball_url", "must be an http:// or https:// URL without spaces or quotes")
        if sha256 is None:
            raise ConfigError(f"{path}.tarball_sha256", "is required with tarball_url")
    if sha256 is not None:
        if url is None:
            raise ConfigError(f"{path}.tarball_sha256", "is only used with tarball_url")
        if not _SHA256_RE.fullmatch(sha256):
            raise ConfigError(f"{path}.tarball_sha256", "must be 64 hexadecimal characters")
        sha256 = sha256.lower()
    return RunnerSoftware(directory=directory, tarball_url=url, tarball_sha256=sha256)


# --- scalars ------------------------------------------------------------------


def _short_name(value: object, path: str) -> str:
    if not isinstance(value, str) or len(value) > NAME_MAX or not _NAME_RE.fullmatch(value):
        raise ConfigError(
            path,
            f"must be 1 to {NAME_MAX} lower-case letters, digits or inner hyphens, got {value!r}",
        )
    return value


def _text(value: object, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(path, "must be a non-empty string")
    if "\0" in value:
        raise ConfigError(path, "must not contain NUL characters")
    return value


def _optional_text(value: object, path: str) -> t.Optional[str]:
    return None if value is None else _text(value, path)


def _names(value: object, path: str, *, required: bool) -> t.Tuple[str, ...]:
    """Networks or security groups: a list of names or ids (a single string is a list of one)."""
    if value is None:
        value = []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(path, "must be a list of names or ids")
    if required and not value:
        raise ConfigError(path, "must name at least one network")
    names: t.List[str] = []
    for index, item in enumerate(value):
        name = _text(item, f"{path}[{index}]")
        if name in names:
            raise ConfigError(f"{path}[{index}]", f"duplicate {name!r}")
        names.append(name)
    return tuple(names)


def _networks(value: object, path: str) -> t.Tuple[str, ...]:
    networks = _names(value, path, required=True)
    if len(networks) > 1 and any(n in _NETWORK_CHOICES for n in networks):
        raise ConfigError(path, "'none' and 'auto' stand alone, without other networks (give a network named so by id)")
    return networks


def _posix_user(value: object, path: str) -> str:
    if not isinstance(value, str) or not _USER_RE.fullmatch(value):
        raise ConfigError(path, f"must be a user name ([a-z_][a-z0-9_-]*, at most 32 characters), got {value!r}")
    return value


def _int(value: object, path: str, *, default: int, minimum: int, maximum: t.Optional[int] = None) -> int:
    result = _optional_int(value, path, minimum=minimum, maximum=maximum)
    return default if result is None else result


def _optional_int(value: object, path: str, *, minimum: int, maximum: t.Optional[int] = None) -> t.Optional[int]:
    if value is None:
        return None
    number: t.Optional[int] = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        number = int(value)  # templated values arrive as strings
    bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
    if number is None or number < minimum or (maximum is not None and number > maximum):
        raise ConfigError(path, f"must be an integer {bounds}, got {value!r}")
    return number


def _bool(value: object, path: str, *, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigError(path, f"must be a boolean, got {value!r}")
