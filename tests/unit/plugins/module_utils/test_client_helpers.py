"""The pure parts of the GitHub and OpenStack clients: auth validation, parsing, error classification."""

from __future__ import annotations

import dataclasses
import datetime
import typing as t

import pytest
from github import GithubException

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import parse_pool
from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import (
    ConfigError,
    GithubError,
    RateLimitError,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._github import (
    GithubClient,
    _runner_from_json,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._github_transport import (
    GithubAuth,
    GithubTransport,
    _next_page_params,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import Scope, ScopeKind, job_matches
from ansible_collections.selfhosted.github_runners.plugins.module_utils._openstack import (
    CloudOptions,
    pool_lookups,
    vm_from_server,
)

TOKEN = "ghp_" + "A" * 36
NOW = 1_700_000_000.0


# --- GithubAuth ------------------------------------------------------------------------------


def test_auth_token_or_app_but_not_both_nor_neither() -> None:
    assert GithubAuth(token=TOKEN).secrets() == (TOKEN,)
    assert GithubAuth(app_id=1, private_key="k", installation_id=2).secrets() == ("k",)
    with pytest.raises(ConfigError, match="not both"):
        GithubAuth(token=TOKEN, app_id=1)


def test_missing_credentials_name_the_real_options_and_their_environment_variables() -> None:
    with pytest.raises(ConfigError) as none:
        GithubAuth()
    assert none.value.field == "github_token"
    assert none.value.message == (
        "no GitHub credentials: give github_token (env GITHUB_TOKEN), or all of github_app_id (env GITHUB_APP_ID),"
        " github_app_private_key or github_app_private_key_path (env GITHUB_APP_PRIVATE_KEY or"
        " GITHUB_APP_PRIVATE_KEY_FILE) and github_app_installation_id (env GITHUB_APP_INSTALLATION_ID)"
    )
    with pytest.raises(ConfigError) as partial:
        GithubAuth(app_id=1, private_key="k")
    assert partial.value.field == "github_app_installation_id"
    assert partial.value.message == "a GitHub App needs github_app_installation_id (env GITHUB_APP_INSTALLATION_ID) too"
    assert "github_auth" not in str(none.value) + str(partial.value)


def test_auth_repr_hides_secrets() -> None:
    assert TOKEN not in repr(GithubAuth(token=TOKEN))
    assert "BEGIN" not in repr(GithubAuth(app_id=1, private_key="-----BEGIN RSA", installation_id=2))


def test_bad_app_key_is_a_config_error_without_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        GithubClient(GithubAuth(app_id=1, private_key="not-a-pem-secret", installation_id=2))
    assert "not-a-pem-secret" not in str(info.value)


# --- parsing ---------------------------------------------------------------------------------


def test_runner_from_json() -> None:
    runner = _runner_from_json(
        {"id": 7, "name": "ci-small-0123456789ab", "status": "online", "busy": True, "labels": [{"name": "x64"}]}
    )
    assert (runner.id, runner.online, runner.busy, runner.labels) == (7, True, True, ("x64",))
    assert not _runner_from_json({"id": 1, "name": "n", "status": "offline", "busy": False}).online


def test_next_page_params_follows_rel_next_only() -> None:
    link = (
        '<https://api.github.com/repositories/1/actions/runners?per_page=100&page=2>; rel="next", '
        '<https://api.github.com/repositories/1/actions/runners?per_page=100&page=3>; rel="last"'
    )
    assert _next_page_params(link) == {"per_page": "100", "page": "2"}
    assert _next_page_params('<https://x/y?page=1>; rel="prev"') is None
    assert _next_page_params(None) is None


@pytest.mark.parametrize(
    ("job", "runner", "ok"),
    [
        (["self-hosted", "linux"], ["Linux", "x64"], True),
        (["linux", "gpu"], ["linux", "x64"], False),
        ([], ["linux"], True),
        (["SELF-HOSTED"], [], True),
    ],
)
def test_job_matches_case_insensitive_with_implicit_self_hosted(job: list[str], runner: list[str], ok: bool) -> None:
    assert job_matches(job, runner) is ok


@pytest.mark.parametrize(
    ("job", "runner", "ok"),
    [
        (["self-hosted", "Linux", "X64", "gpu"], ["gpu"], True),  # OS and architecture need not be listed
        (["linux", "ARM64", "gpu"], ["gpu", "x64"], False),  # ... but a listed architecture must match
        (["windows", "gpu"], ["Linux", "gpu"], False),
        (["macOS", "arm64"], ["macos", "ARM64"], True),
        (["linux", "gpu"], ["linux"], False),  # other labels stay required
    ],
)
def test_job_matches_with_generic_labels_aside(job: list[str], runner: list[str], ok: bool) -> None:
    assert job_matches(job, runner, generic_aside=True) is ok


def test_job_matches_requires_generic_labels_by_default() -> None:
    assert not job_matches(["linux", "x64", "gpu"], ["gpu"])


# --- GitHub error classification ---------------------------------------------------------


@pytest.fixture
def transport() -> t.Iterator[GithubTransport]:
    gh = GithubTransport(GithubAuth(token=TOKEN), max_rate_limit_wait=60, clock=lambda: NOW)
    yield gh
    gh.close()


def exc(status: int, message: str, **headers: str) -> GithubException:
    return GithubException(status, {"message": message}, headers, None)


def test_5xx_and_connection_failures_are_retried(transport: GithubTransport) -> None:
    import requests

    assert transport._retryable("GET", exc(502, "Bad Gateway")) == 0.0
    assert transport._retryable("DELETE", exc(503, "Unavailable")) == 0.0
    # a POST answered 5xx or cut off after sending may have registered the runner: not repeated
    assert transport._retryable("POST", exc(502, "Bad Gateway")) is None
    assert transport._retryable("POST", requests.exceptions.ConnectionError()) is None
    assert transport._retryable("POST", requests.exceptions.ConnectTimeout()) == 0.0  # nothing was sent
    assert transport._retryable("GET", requests.exceptions.ConnectionError()) == 0.0
    assert transport._retryable("GET", requests.exceptions.ReadTimeout()) == 0.0
    # a POST that timed out may have registered the runner: not repeated
    assert transport._retryable("POST", requests.exceptions.ReadTimeout()) is None
    assert transport._retryable("GET", exc(404, "Not Found")) is None
    assert transport._retryable("DELETE", exc(422, "Runner is busy")) is None


def test_rate_limits_wait_when_short_else_give_up(transport: GithubTransport) -> None:
    primary_short = exc(
        403, "API rate limit exceeded", **{"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 5)}
    )
    primary_long = exc(
        403, "API rate limit exceeded", **{"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 3000)}
    )
    secondary = exc(429, "You have exceeded a secondary rate limit", **{"retry-after": "3"})
    assert transport._retryable("GET", primary_short) == 5.0
    assert transport._retryable("GET", primary_long) is None
    assert transport._retryable("POST", secondary) == 3.0
    assert transport._retryable("GET", exc(403, "Resource not accessible by integration")) is None
    assert transport._rate_limit_wait(exc(403, "You have exceeded a secondary rate limit")) == 60.0


def test_translation_keeps_githubs_message_and_drops_secrets(transport: GithubTransport) -> None:
    err = transport._translate("DELETE /repos/o/r/actions/runners/1", exc(500, f"boom {TOKEN} eyJa.eyJb.sig"))
    assert isinstance(err, GithubError) and not isinstance(err, RateLimitError)
    assert err.status == 500
    assert TOKEN not in str(err) and "eyJa" not in str(err)
    assert "DELETE /repos/o/r/actions/runners/1" in str(err)
    limited = transport._translate(
        "GET x",
        exc(
            403, "API rate limit exceeded", **{"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 3000)}
        ),
    )
    assert isinstance(limited, RateLimitError)
    assert limited.reset_in == 3000
    assert "API rate limit exceeded" in str(limited)


def test_floor_refuses_mutating_calls_when_the_reset_is_far(transport: GithubTransport) -> None:
    transport.rate_limit_floor = 10
    transport._observe({"X-RateLimit-Remaining": "3", "X-RateLimit-Reset": str(int(NOW) + 3000)})
    with pytest.raises(RateLimitError, match="only 3 API requests left"):
        transport._respect_floor("POST x")
    transport._observe({"X-RateLimit-Remaining": "30", "X-RateLimit-Reset": str(int(NOW) + 3000)})
    transport._respect_floor("POST x")  # above the floor: no error


def test_floor_waits_for_a_near_reset() -> None:
    slept: list[float] = []
    gh = GithubTransport(GithubAuth(token=TOKEN), rate_limit_floor=10, sleep=slept.append, clock=lambda: NOW)
    gh._observe({"x-ratelimit-remaining": "1", "x-ratelimit-reset": str(int(NOW) + 4)})
    gh._respect_floor("POST x")
    assert len(slept) == 1 and 4.0 <= slept[0] <= 5.0  # until the reset, plus jitter
    assert gh.rate_limit_remaining is None
    gh.close()


def test_scope_paths_are_quoted() -> None:
    assert (
        GithubClient._path(Scope(ScopeKind.REPOSITORY, "o/r"), "actions", "runners", 5)
        == "/repos/o/r/actions/runners/5"
    )
    assert GithubClient._path(Scope(ScopeKind.ORGANIZATION, "my org"), "x") == "/orgs/my%20org/x"


def test_repository_scope_has_only_the_default_runner_group() -> None:
    client = GithubClient(GithubAuth(token=TOKEN))
    repo = Scope(ScopeKind.REPOSITORY, "o/r")
    assert client.runner_group_id(repo, None) == 1
    assert client.runner_group_id(repo, "Default") == 1
    with pytest.raises(ConfigError, match="runner_group"):
        client.runner_group_id(repo, "gpu")
    assert client.total_calls == 0
    client.close()


# --- OpenStack ---------------------------------------------------------------------------------


def test_cloud_options_use_openstacksdk_names_and_drop_unset() -> None:
    opts = CloudOptions(
        cloud="sandbox", validate_certs=False, ca_cert="/ca.pem", api_timeout=10, auth={"password": "pw"}
    )
    assert opts.connect_kwargs() == {
        "cloud": "sandbox",
        "auth": {"password": "pw"},
        "verify": False,
        "cacert": "/ca.pem",
        "api_timeout": 10,
    }
    assert "pw" not in repr(opts)
    assert CloudOptions().connect_kwargs() == {}


def test_vm_from_server_reads_our_tags_metadata_and_fault() -> None:
    vm = vm_from_server(
        {
            "id": "abc",
            "name": "ci-small-0123456789ab",
            "status": "ERROR",
            "created": "2024-05-01T10:00:05Z",
            "tags": ["ghr-controller=ci", "ghr-pool=small"],
            "metadata": {
                "ghr_runner_id": "42",
                "ghr_created_at": "2024-05-01T10:00:00Z",
                "ghr_job_id": "7",
                "ghr_scope": "organization:octo-org",
            },
            "fault": {"message": "No valid host was found.", "code": 500},
        },
        "ci",
    )
    assert vm is not None
    assert (vm.pool, vm.runner_id, vm.job_id, vm.fault) == ("small", 42, 7, "No valid host was found.")
    assert vm.created_at == datetime.datetime(2024, 5, 1, 10, 0, 0, tzinfo=datetime.UTC)
    assert vm.scope == Scope(ScopeKind.ORGANIZATION, "octo-org")
    assert vm.flavor is None and vm.image is None  # Nova showed neither


@pytest.mark.parametrize(
    ("flavor", "image", "expected"),
    [
        ({"original_name": "m1.small", "vcpus": 1}, {"id": "img-1", "links": []}, ("m1.small", "img-1")),
        ({"id": "f-1", "links": []}, "", ("f-1", None)),  # before microversion 2.47; booted from a volume
        ("f-2", "img-2", ("f-2", "img-2")),
    ],
)
def test_vm_from_server_reads_the_flavor_and_image_it_was_created_with(
    flavor: t.Any, image: t.Any, expected: tuple[str | None, str | None]
) -> None:
    server = {
        "id": "a",
        "name": "ci-small-0123456789ab",
        "status": "ACTIVE",
        "tags": ["ghr-controller=ci", "ghr-pool=small"],
    }
    vm = vm_from_server({**server, "flavor": flavor, "image": image}, "ci")
    assert vm is not None and (vm.flavor, vm.image) == expected


def test_vm_from_server_falls_back_to_novas_created_and_skips_untagged() -> None:
    vm = vm_from_server(
        {
            "id": "x",
            "name": "ci-p-0123456789ab",
            "status": "build",
            "created": "2024-05-01T10:00:05Z",
            "tags": ["ghr-controller=ci", "ghr-pool=p"],
        },
        "ci",
    )
    assert vm is not None
    assert vm.status == "BUILD"
    assert vm.created_at == datetime.datetime(2024, 5, 1, 10, 0, 5, tzinfo=datetime.UTC)
    assert vm.runner_id is None and vm.fault is None and vm.scope is None
    assert vm_from_server({"id": "y", "name": "n", "status": "ACTIVE", "tags": ["other"]}, "ci") is None


@pytest.mark.parametrize(
    ("name", "tags"),
    [
        # Our tags, a foreign name.
        ("stray-vm-with-our-tags", ["ghr-controller=ci", "ghr-pool=small"]),
        # Our name shape and pool tag, another controller's tag (a cloud that ignored ?tags=).
        ("ci-small-0123456789ab", ["ghr-controller=other", "ghr-pool=small"]),
        # No controller tag at all.
        ("ci-small-0123456789ab", ["ghr-pool=small"]),
        # The name of another pool than the tag says.
        ("ci-big-0123456789ab", ["ghr-controller=ci", "ghr-pool=small"]),
        (None, ["ghr-controller=ci", "ghr-pool=small"]),
    ],
)
def test_vm_from_server_claims_only_our_tags_with_our_name(name: t.Optional[str], tags: t.List[str]) -> None:
    assert vm_from_server({"id": "z", "name": name, "status": "ACTIVE", "tags": tags}, "ci") is None


# --- look-ups a pool needs ----------------------------------------------------------------------


def test_pool_lookups_name_each_field_and_skip_what_nova_takes_as_it_is() -> None:
    image_id = "3f0c1f0e-0000-4000-8000-000000000001"
    net_id = "3F0C1F0E-0000-4000-8000-000000000002"
    sg_id = "3f0c1f0e-0000-4000-8000-000000000003"
    pool = parse_pool(
        {
            "name": "small",
            "repository": "octo/hello",
            "labels": ["linux"],
            "flavor": "m1.small",
            "image": image_id,
            "networks": ["runners-net", net_id, "other"],
            "security_groups": [sg_id, "no-ingress"],
        },
        path="pools[2]",
    )
    assert pool_lookups(pool) == [
        ("pools[2].flavor", "flavor", "m1.small"),
        ("pools[2].networks[0]", "network", "runners-net"),
        ("pools[2].networks[2]", "network", "other"),
        ("pools[2].security_groups[1]", "security_group", "no-ingress"),
    ]
    named = dataclasses.replace(pool, image="ubuntu-24.04-runner", networks=("auto",), security_groups=())
    assert pool_lookups(named) == [
        ("pools[2].flavor", "flavor", "m1.small"),
        ("pools[2].image", "image", "ubuntu-24.04-runner"),
    ]
    assert pool_lookups(dataclasses.replace(named, networks=("none",))) == pool_lookups(named)


def test_a_rate_limit_not_waited_out_holds_back_every_mutating_request() -> None:
    now = [NOW]
    gh = GithubTransport(GithubAuth(token=TOKEN), clock=lambda: now[0])
    assert gh.rate_status().not_before is None
    error = gh._translate("POST x", exc(403, "You have exceeded a secondary rate limit", **{"retry-after": "120"}))
    assert isinstance(error, RateLimitError)
    gh._hold(error.reset_in)
    held = gh.rate_status().not_before
    assert held is not None
    assert NOW + 120 <= held.timestamp() <= NOW + 128  # Retry-After plus jitter
    for method in ("POST", "DELETE"):
        with pytest.raises(RateLimitError, match="not sent"):
            gh._respect_hold(f"{method} x")
    now[0] = held.timestamp() + 1
    gh._respect_hold("POST x")  # over: requests go again
    gh.hold_mutations_until(datetime.datetime.fromtimestamp(now[0] + 30, datetime.UTC))
    with pytest.raises(RateLimitError):
        gh._respect_hold("POST x")
    gh.close()
