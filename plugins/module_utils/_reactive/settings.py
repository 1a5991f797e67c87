# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the services' settings files have in common: reading the YAML, checking plain values, secret files.

Every check raises ConfigError naming the field's dotted path; none puts a secret into its message.
"""

from __future__ import annotations

import os
import pathlib
import stat
import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import ConfigError

YAML_IMPORT_ERROR: t.Optional[str]
try:
    import yaml

    YAML_IMPORT_ERROR = None
except ImportError as exc:  # reported when a file is to be read
    YAML_IMPORT_ERROR = str(exc)

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
MAX_SECRET_BYTES = 4096

# read_secret(path, field) -> (content, whether others than its owner may read the file)
SecretReader = t.Callable[[str, str], t.Tuple[bytes, bool]]


def load_yaml(path: t.Union[str, pathlib.Path]) -> object:
    """The data of the YAML file at `path` ({} for an empty file)."""
    if YAML_IMPORT_ERROR is not None:
        raise ConfigError("config", f"reading {path} needs PyYAML: {YAML_IMPORT_ERROR}")
    try:
        content = pathlib.Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("config", f"cannot read {path}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        raise ConfigError("config", f"{path} is not valid YAML: {str(exc)[:300]}") from None
    return {} if raw is None else raw


def read_secret_file(path: str, field: str) -> t.Tuple[bytes, bool]:
    """A secret file's content without its final line break, and whether others than its owner may read it."""
    try:
        with open(path, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            data = handle.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise ConfigError(field, f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_SECRET_BYTES:
        raise ConfigError(field, f"{path} holds more than {MAX_SECRET_BYTES} bytes")
    value = data.rstrip(b"\r\n")
    if not value.strip():
        raise ConfigError(field, f"{path} is empty")
    return value, bool(stat.S_IMODE(mode) & 0o077)


def read_secret_text(read: SecretReader, path: object, field: str, exposed: t.List[str]) -> str:
    """A secret file's content as text; the file goes into `exposed` when others than its owner may read it."""
    name = text(path, field)
    data, is_exposed = read(name, field)
    if is_exposed:
        exposed.append(name)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(field, f"{name} does not hold UTF-8 text") from None


def mongodb_uri(
    mongodb: t.Mapping[str, object],
    env: t.Mapping[str, str],
    read: SecretReader,
    exposed: t.List[str],
    uri_file_variable: str,
) -> str:
    """The connection string: MONGODB_URI, else the file of `uri_file_variable` or `mongodb.uri_file`, else `mongodb.uri`."""
    if env.get("MONGODB_URI"):
        return env["MONGODB_URI"]
    uri_file = env.get(uri_file_variable) or mongodb.get("uri_file")
    if uri_file is not None and mongodb.get("uri") is not None:
        raise ConfigError("mongodb", "set one of uri and uri_file")
    if uri_file is not None:
        return read_secret_text(read, uri_file, "mongodb.uri_file", exposed).strip()
    uri = text(mongodb.get("uri"), "mongodb.uri")
    if "@" in uri.split("?", 1)[0]:
        raise ConfigError("mongodb.uri", "holds credentials: put the connection string in the file of uri_file")
    return uri


def mapping(raw: object, path: str, known: t.AbstractSet[str]) -> t.Mapping[str, object]:
    """`raw` as a mapping of known keys; the top level's path is `config`."""
    if not isinstance(raw, dict):
        raise ConfigError(path, "must be a mapping")
    for key in raw:
        if key not in known:
            field = str(key) if path == "config" else f"{path}.{key}"
            raise ConfigError(field, f"unknown option (known: {', '.join(sorted(known))})")
    return t.cast("t.Mapping[str, object]", raw)


def text(value: object, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(path, f"must be a non-empty string, got {value!r}"[:200])
    return value.strip()


def integer(value: object, path: str, low: int, high: int) -> int:
    """An integer in [low, high]; digits in a string (the environment's values) count."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(path, f"must be an integer from {low} to {high}, got {value!r}"[:200])
    return value


def seconds(value: object, path: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= float(value) <= high:
        raise ConfigError(path, f"must be a number of seconds from {low:g} to {high:g}, got {value!r}"[:200])
    return float(value)


def number(value: object, path: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= float(value) <= high:
        raise ConfigError(path, f"must be a number from {low:g} to {high:g}, got {value!r}"[:200])
    return float(value)


def boolean(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(path, f"must be true or false, got {value!r}"[:200])
    return value


def choice(value: object, path: str, choices: t.Sequence[str]) -> str:
    if not isinstance(value, str) or value.lower() not in choices:
        raise ConfigError(path, f"must be one of {', '.join(choices)}, got {value!r}"[:200])
    return value.lower()
