"""Identity: runner names, ownership, server tags and metadata."""

from __future__ import annotations

import datetime
import re
import typing as t

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import ConfigError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._identity import (
    GHR_CREATED_AT,
    GHR_JOB_ID,
    GHR_RUNNER_ID,
    GHR_SCOPE,
    VmMetadata,
    controller_tag,
    format_scope,
    format_timestamp,
    name_prefix,
    owns_name,
    parse_scope_text,
    parse_timestamp,
    parse_vm_metadata,
    pool_from_tags,
    pool_tag,
    reactive_runner_name,
    runner_name,
    server_pool,
    vm_metadata,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import Scope, ScopeKind

UTC = datetime.UTC
REPO = Scope(ScopeKind.REPOSITORY, "octo-org/app")
NAME_RE = re.compile(r"ci-small-[0-9a-f]{12}")


def test_runner_name_shape_and_randomness() -> None:
    names = {runner_name("ci", "small") for _attempt in range(50)}
    assert len(names) == 50
    assert all(NAME_RE.fullmatch(name) for name in names)
    assert runner_name("ci", "small", "0123456789ab") == "ci-small-0123456789ab"


def test_longest_runner_name_fits_github() -> None:
    name = runner_name("c" * 20, "p" * 20)
    assert len(name) == 54 <= 64


@pytest.mark.parametrize("token", ["0123456789AB", "0123456789a", "0123456789abc", "ghijklmnopqr", ""])
def test_runner_name_rejects_bad_tokens(token: str) -> None:
    with pytest.raises(ValueError, match="12 lower-case hex"):
        runner_name("ci", "small", token)


def test_runner_name_rejects_bad_ids() -> None:
    with pytest.raises(ConfigError):
        runner_name("CI", "small")
    with pytest.raises(ConfigError) as info:
        runner_name("ci", "p" * 21)
    assert info.value.field == "pool"
    assert name_prefix("ci", "small") == "ci-small-"


def test_reactive_names_are_deterministic_per_job() -> None:
    first = reactive_runner_name("ci", "small", 123456789)
    assert first == reactive_runner_name("ci", "small", 123456789)
    assert first != reactive_runner_name("ci", "small", 123456790)
    assert NAME_RE.fullmatch(first)
    assert owns_name("ci", "small", first)


@pytest.mark.parametrize("job_id", [0, -1, True, "12", 1.0])
def test_reactive_names_need_a_positive_job_id(job_id: t.Any) -> None:
    with pytest.raises(ValueError):
        reactive_runner_name("ci", "small", job_id)


@pytest.mark.parametrize(
    ("controller", "pool", "name", "ours"),
    [
        ("ci", "small", "ci-small-0123456789ab", True),
        ("ci", "small", "ci-small-0123456789a", False),
        ("ci", "small", "ci-small-0123456789abc", False),
        ("ci", "small", "ci-small-0123456789AB", False),
        ("ci", "small", "ci-small-b-0123456789ab", False),  # pool small-b, not small
        ("ci", "small-b", "ci-small-0123456789ab", False),
        ("ci", "small", "cd-small-0123456789ab", False),
        ("ci", "small", "xci-small-0123456789ab", False),
        ("ci", "small", "my-laptop-runner", False),
        ("ci", "small", "", False),
    ],
)
def test_owns_name(controller: str, pool: str, name: str, ours: bool) -> None:
    assert owns_name(controller, pool, name) is ours


def test_tags() -> None:
    assert controller_tag("ci") == "ghr-controller=ci"
    assert pool_tag("small") == "ghr-pool=small"
    assert pool_from_tags(["ghr-controller=ci", "ghr-pool=small", "other"]) == "small"
    assert pool_from_tags(["ghr-controller=ci"]) is None
    assert pool_from_tags(["ghr-pool=a", "ghr-pool=b"]) is None
    assert pool_from_tags(["ghr-pool="]) is None
    assert pool_from_tags([None, 3, "ghr-pool=x"]) == "x"


def test_server_pool_needs_both_tags_and_a_name_of_the_pool() -> None:
    ours = ["ghr-controller=ci", "ghr-pool=small"]
    assert server_pool("ci", "ci-small-0123456789ab", ours) == "small"
    assert server_pool("ci", "stray-vm-with-our-tags", ours) is None
    assert server_pool("ci", "ci-small-0123456789ab", ["ghr-pool=small"]) is None
    assert server_pool("ci", "ci-small-0123456789ab", ["ghr-controller=ci2", "ghr-pool=small"]) is None
    assert server_pool("ci", "ci-small-0123456789ab", ["ghr-controller=ci", "ghr-pool=big"]) is None
    assert server_pool("ci", "ci-small-0123456789ab", [*ours, "ghr-pool=big"]) is None
    assert server_pool("ci", 42, ours) is None
    # Only pool names the configuration accepts (the name goes into lock file names).
    assert server_pool("ci", "ci-../x-0123456789ab", ["ghr-controller=ci", "ghr-pool=../x"]) is None
    assert server_pool("ci", "ci-Big-0123456789ab", ["ghr-controller=ci", "ghr-pool=Big"]) is None


def test_vm_metadata() -> None:
    created = datetime.datetime(2024, 5, 1, 14, 30, 15, 123456, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    assert vm_metadata(42, created, REPO) == {
        GHR_RUNNER_ID: "42",
        GHR_CREATED_AT: "2024-05-01T12:30:15Z",
        GHR_SCOPE: "repository:octo-org/app",
    }
    assert vm_metadata(42, created, REPO, job_id=7)[GHR_JOB_ID] == "7"
    with pytest.raises(ValueError):
        vm_metadata(42, datetime.datetime(2024, 5, 1), REPO)


@pytest.mark.parametrize(
    "scope",
    [
        Scope(ScopeKind.REPOSITORY, "octo-org/app"),
        Scope(ScopeKind.REPOSITORY, "o/a.b_c-d"),
        Scope(ScopeKind.ORGANIZATION, "octo-org"),
        Scope(ScopeKind.ENTERPRISE, "big-corp"),
    ],
)
def test_scope_text_round_trip(scope: Scope) -> None:
    assert parse_scope_text(format_scope(scope)) == scope
    assert parse_vm_metadata({GHR_SCOPE: format_scope(scope)}).scope == scope


@pytest.mark.parametrize(
    "value",
    ["", "octo-org/app", "repository:", "repository:octo-org", "organization:a/b", "team:octo", ":x", None, 3, ["x"]],
)
def test_unreadable_scopes_become_none(value: t.Any) -> None:
    assert parse_scope_text(value) is None
    assert parse_vm_metadata({GHR_SCOPE: value}).scope is None


def test_parse_vm_metadata() -> None:
    parsed = parse_vm_metadata(
        {GHR_RUNNER_ID: "42", GHR_CREATED_AT: "2024-05-01T12:30:15Z", GHR_JOB_ID: "7", "other": "x"}
    )
    assert parsed == VmMetadata(42, datetime.datetime(2024, 5, 1, 12, 30, 15, tzinfo=UTC), 7)
    assert parse_vm_metadata({}) == VmMetadata()
    assert parse_vm_metadata(None) == VmMetadata()
    assert parse_vm_metadata(["x"]) == VmMetadata()  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["", "abc", "-3", "0", "1.5", "٣", True, None, 1.0, [1], " "])
def test_bad_ids_become_none(value: t.Any) -> None:
    assert parse_vm_metadata({GHR_RUNNER_ID: value, GHR_JOB_ID: value}) == VmMetadata()


def test_integer_ids_are_taken() -> None:
    assert parse_vm_metadata({GHR_RUNNER_ID: 5, GHR_JOB_ID: " 9 "}) == VmMetadata(runner_id=5, job_id=9)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", datetime.datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00z", datetime.datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T14:00:00+02:00", datetime.datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00.250000Z", datetime.datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)),
        ("2024-05-01T12:00:00", datetime.datetime(2024, 5, 1, 12, tzinfo=UTC)),  # Nova-style naive = UTC
        ("yesterday", None),
        ("", None),
        ("2024-13-01T00:00:00Z", None),
        (1714564800, None),
        (None, None),
    ],
)
def test_parse_timestamp(text: t.Any, expected: t.Optional[datetime.datetime]) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo == UTC


def test_format_timestamp_needs_aware_times() -> None:
    with pytest.raises(ValueError):
        format_timestamp(datetime.datetime(2024, 5, 1))


@given(
    runner_id=st.integers(min_value=1, max_value=2**63),
    created=st.datetimes(
        min_value=datetime.datetime(1971, 1, 1),
        max_value=datetime.datetime(9998, 1, 1),
        timezones=st.just(UTC),
    ),
    job_id=st.one_of(st.none(), st.integers(min_value=1, max_value=2**63)),
)
def test_metadata_round_trip(runner_id: int, created: datetime.datetime, job_id: t.Optional[int]) -> None:
    longest = Scope(ScopeKind.REPOSITORY, "o" * 39 + "/" + "r" * 100)
    metadata = vm_metadata(runner_id, created, longest, job_id)
    assert all(isinstance(v, str) and len(v) <= 255 for v in metadata.values())  # Nova's limits
    assert parse_vm_metadata(metadata) == VmMetadata(runner_id, created.replace(microsecond=0), job_id, longest)


@settings(suppress_health_check=[HealthCheck.too_slow])  # the first text draw builds Unicode tables
@given(
    st.dictionaries(
        st.sampled_from([GHR_RUNNER_ID, GHR_CREATED_AT, GHR_JOB_ID, "x"]),
        st.one_of(st.text(), st.integers(), st.none(), st.floats(), st.booleans()),
    )
)
def test_parse_vm_metadata_never_raises(metadata: t.Dict[str, t.Any]) -> None:
    parsed = parse_vm_metadata(metadata)
    assert parsed.runner_id is None or parsed.runner_id > 0
    assert parsed.created_at is None or parsed.created_at.tzinfo == UTC


@given(
    controller=st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True), pool=st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True)
)
def test_every_generated_name_is_owned_by_its_pool_only(controller: str, pool: str) -> None:
    name = runner_name(controller, pool)
    assert owns_name(controller, pool, name)
    assert not owns_name(controller, pool + "x", name)
    assert owns_name(controller, pool, reactive_runner_name(controller, pool, 1))
