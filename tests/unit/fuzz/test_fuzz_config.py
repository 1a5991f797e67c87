"""Fuzzed pool configurations: every input gives a pool or a ConfigError that names the bad field."""

from __future__ import annotations

import typing as t

from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import PoolSpec, parse_pool, parse_pools
from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import ConfigError
from tests.unit.fuzz.strategies import FUZZ, anything, bent

VALID_POOL: t.Dict[str, t.Any] = {
    "name": "small",
    "repository": "octo-org/app",
    "labels": ["self-hosted", "linux"],
    "min_idle": 1,
    "max_runners": 5,
    "flavor": "m1.small",
    "image": "ubuntu-24.04-runner",
    "networks": ["runners-net"],
    "security_groups": ["runners-no-ingress"],
    "bootstrap_timeout": "10m",
    "offline_grace": 60,
    "registration_grace": "2m",
    "max_lifetime": "6h",
    "creation_backoff": "1m",
    "creation_backoff_max": "30m",
    "user_data": {"extra_env": {"A": "b"}},
}
KEYS = [
    *VALID_POOL,
    "organization",
    "enterprise",
    "runner_group",
    "key_name",
    "boot_from_volume",
    "volume_size",
    "availability_zone",
    "create_concurrency",
    "max_create_per_run",
    "max_replace_per_run",
]


def check_rejection(exc: ConfigError, path: str) -> None:
    text = str(exc)
    assert exc.field.startswith(path), text
    assert text.startswith(f"{exc.field}: ") and exc.message.strip(), text
    assert "Traceback" not in text and len(text) < 2000, text


@FUZZ
@given(bent(VALID_POOL, KEYS))
def test_a_bent_pool_is_parsed_or_refused_naming_its_field(raw: t.Dict[str, t.Any]) -> None:
    try:
        pool = parse_pool(raw, path="pools[3]")
    except ConfigError as exc:
        check_rejection(exc, "pools[3]")
    else:
        assert isinstance(pool, PoolSpec)
        assert pool.max_runners > 0 and pool.min_idle >= 0


@FUZZ
@given(anything)
def test_any_value_as_a_pool_list_is_parsed_or_refused(raw: object) -> None:
    try:
        parse_pools(raw)
    except ConfigError as exc:
        check_rejection(exc, "pools")


@FUZZ
@given(st.lists(bent(VALID_POOL, ["name", "labels", "repository", "organization"]), max_size=4))
def test_a_list_of_bent_pools_is_parsed_or_refused(raw: t.List[t.Dict[str, t.Any]]) -> None:
    try:
        pools = parse_pools(raw)
    except ConfigError as exc:
        check_rejection(exc, "pools[")
    else:
        assert len({p.name for p in pools}) == len(pools)
