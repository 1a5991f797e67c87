# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Identity: what is ours. Runner and VM names, server tags and server metadata.

Runner name = VM name = ``<controller_id>-<pool>-<12 hex>``. A name is ours only
when it has exactly that shape, so pool ``a`` never claims pool ``a-b``'s runners.
A server is ours only with both our tags and such a name (`server_pool`): a tag
alone, or a cloud that ignores the listing's tag filter, claims nothing.
Nothing here raises on data read back from a cloud: bad values become ``None``.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import re
import secrets
import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import (
    parse_controller_id,
    parse_pool_name,
    parse_scope,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import ConfigError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import Scope

GHR_RUNNER_ID = "ghr_runner_id"
GHR_CREATED_AT = "ghr_created_at"
GHR_JOB_ID = "ghr_job_id"
GHR_SCOPE = "ghr_scope"
GHR_SPEC = "ghr_spec"
CONTROLLER_TAG_PREFIX = "ghr-controller="
POOL_TAG_PREFIX = "ghr-pool="
SUFFIX_LENGTH = 12
#: GitHub's limit on a runner name.
MAX_NAME_LENGTH = 64

_SUFFIX_RE = re.compile(f"[0-9a-f]{{{SUFFIX_LENGTH}}}")
_SPEC_RE = re.compile("[0-9a-f]{8,64}")
_UTC = datetime.timezone.utc


@dataclasses.dataclass(frozen=True)
class VmMetadata:
    """Our server metadata, typed; a missing or malformed value is ``None``."""

    runner_id: t.Optional[int] = None
    created_at: t.Optional[datetime.datetime] = None
    job_id: t.Optional[int] = None
    scope: t.Optional[Scope] = None
    spec: t.Optional[str] = None  # ghr_spec: the hash of the spec the VM was created from (see _drift)


def name_prefix(controller_id: str, pool: str) -> str:
    """The prefix shared by every runner name of a pool, e.g. ``ci-small-``."""
    parse_controller_id(controller_id)
    parse_pool_name(pool, path="pool")
    return f"{controller_id}-{pool}-"


def runner_name(controller_id: str, pool: str, token: t.Optional[str] = None) -> str:
    """A new runner name; `token` is the 12-hex suffix (random when ``None``)."""
    suffix = secrets.token_hex(SUFFIX_LENGTH // 2) if token is None else token
    if not _SUFFIX_RE.fullmatch(suffix):
        raise ValueError(f"runner name token must be {SUFFIX_LENGTH} lower-case hex digits, got {suffix!r}")
    name = name_prefix(controller_id, pool) + suffix
    if len(name) > MAX_NAME_LENGTH:  # cannot happen with the 20-character id and pool limits
        raise ValueError(f"runner name {name!r} is longer than {MAX_NAME_LENGTH} characters")
    return name


def reactive_runner_name(controller_id: str, pool: str, job_id: int) -> str:
    """The runner name for a job: the same for every spawn attempt of that job.

    A retried spawn (crashed consumer, expired lease) then collides on GitHub
    (409 on the duplicate name) instead of starting a second runner.
    """
    if isinstance(job_id, bool) or not isinstance(job_id, int) or job_id <= 0:
        raise ValueError(f"job id must be a positive integer, got {job_id!r}")
    digest = hashlib.sha256(f"github-job:{job_id}".encode()).hexdigest()
    return runner_name(controller_id, pool, digest[:SUFFIX_LENGTH])


def owns_name(controller_id: str, pool: str, name: str) -> bool:
    """Whether `name` is a runner name of this controller's pool."""
    prefix = f"{controller_id}-{pool}-"
    return name.startswith(prefix) and _SUFFIX_RE.fullmatch(name[len(prefix) :]) is not None


def controller_tag(controller_id: str) -> str:
    return CONTROLLER_TAG_PREFIX + controller_id


def pool_tag(pool: str) -> str:
    return POOL_TAG_PREFIX + pool


def pool_from_tags(tags: t.Iterable[object]) -> t.Optional[str]:
    """The pool named by a server's ``ghr-pool=`` tag, if it has exactly one."""
    pools = [tag[len(POOL_TAG_PREFIX) :] for tag in tags if isinstance(tag, str) and tag.startswith(POOL_TAG_PREFIX)]
    return pools[0] if len(pools) == 1 and pools[0] else None


def server_pool(controller_id: str, name: object, tags: t.Iterable[object]) -> t.Optional[str]:
    """The pool of a server that is ours: our controller tag, one pool tag, and a name of that pool.

    ``None`` for anything else, such as a VM that carries our tags under a foreign name.
    """
    tags = list(tags)
    pool = pool_from_tags(tags)
    if pool is None or controller_tag(controller_id) not in tags or not isinstance(name, str):
        return None
    try:
        parse_pool_name(pool, path="pool")  # a tag is data from the cloud: it also names lock files
    except ConfigError:
        return None
    return pool if owns_name(controller_id, pool, name) else None


def format_timestamp(moment: datetime.datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, to the second (e.g. ``2024-05-01T10:00:00Z``)."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(_UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(value: object) -> t.Optional[datetime.datetime]:
    """An aware UTC datetime from ISO 8601 text (naive text is taken as UTC); ``None`` if unreadable."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_UTC)
    return moment.astimezone(_UTC)


def format_scope(scope: Scope) -> str:
    """A scope as text, e.g. ``repository:octo-org/app`` (the `ghr_scope` metadata value)."""
    return f"{scope.kind.value}:{scope.name}"


def parse_scope_text(value: object) -> t.Optional[Scope]:
    """The scope written by `format_scope`; ``None`` if unreadable."""
    if not isinstance(value, str):
        return None
    kind, colon, name = value.partition(":")
    if not colon:
        return None
    try:
        return parse_scope(kind, name, GHR_SCOPE)
    except ConfigError:
        return None


def vm_metadata(
    runner_id: int,
    created_at: datetime.datetime,
    scope: Scope,
    job_id: t.Optional[int] = None,
    spec: t.Optional[str] = None,
) -> t.Dict[str, str]:
    """The Nova metadata of a new runner VM (values are strings, as Nova requires); `spec` is its spec hash."""
    metadata = {
        GHR_RUNNER_ID: str(runner_id),
        GHR_CREATED_AT: format_timestamp(created_at),
        GHR_SCOPE: format_scope(scope),
    }
    if spec is not None:
        if not _SPEC_RE.fullmatch(spec):
            raise ValueError(f"a spec hash must be 8 to 64 lower-case hex digits, got {spec!r}")
        metadata[GHR_SPEC] = spec
    if job_id is not None:
        metadata[GHR_JOB_ID] = str(job_id)
    return metadata


def parse_vm_metadata(metadata: t.Optional[t.Mapping[str, object]]) -> VmMetadata:
    """Our keys of a server's metadata, typed; never raises."""
    if not isinstance(metadata, t.Mapping):
        return VmMetadata()
    return VmMetadata(
        runner_id=_positive_int(metadata.get(GHR_RUNNER_ID)),
        created_at=parse_timestamp(metadata.get(GHR_CREATED_AT)),
        job_id=_positive_int(metadata.get(GHR_JOB_ID)),
        scope=parse_scope_text(metadata.get(GHR_SCOPE)),
        spec=_spec(metadata.get(GHR_SPEC)),
    )


def _spec(value: object) -> t.Optional[str]:
    return value if isinstance(value, str) and _SPEC_RE.fullmatch(value) else None


def _positive_int(value: object) -> t.Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.strip().isdigit() and value.strip().isascii():
        number = int(value.strip())
        return number if number > 0 else None
    return None
