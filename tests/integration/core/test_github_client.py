"""GithubClient against the GitHub simulator over HTTP: call budgets, delete outcomes, faults, secrets."""

from __future__ import annotations

import math
import pathlib
import traceback
import typing as t
import uuid

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import parse_pool
from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import (
    ConfigError,
    GithubError,
    RateLimitError,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._github import GithubAuth, GithubClient
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import Scope, ScopeKind, job_matches
from ansible_collections.selfhosted.github_runners.plugins.module_utils._openstack import CloudClient, CloudOptions
from ansible_collections.selfhosted.github_runners.plugins.module_utils._ratelimit import TokenBucket
from ansible_collections.selfhosted.github_runners.plugins.module_utils._retry import RetryPolicy
from tests.integration.conftest import SandboxHandle

pytestmark = pytest.mark.sandbox

RUNNERS = "/repos/{owner}/{repo}/actions/runners"
RUNNER = "/repos/{owner}/{repo}/actions/runners/{runner_id}"
JIT = "/repos/{owner}/{repo}/actions/runners/generate-jitconfig"
FAST_RETRY = RetryPolicy(attempts=3, base=0.05, cap=0.2, budget=30.0)


def make_client(sandbox: SandboxHandle, **kwargs: t.Any) -> GithubClient:
    kwargs.setdefault("timeout", 5)
    kwargs.setdefault("retry", FAST_RETRY)
    # The simulator has no secondary limit: a test that registers hundreds of runners is not paced.
    kwargs.setdefault("write_bucket", TokenBucket(burst=10_000, per_minute=60_000))
    return GithubClient(GithubAuth(token=sandbox.env["GITHUB_TOKEN"]), api_url=sandbox.env["GITHUB_API_URL"], **kwargs)


@pytest.fixture
def gh(fresh_sandbox_state: SandboxHandle) -> t.Iterator[GithubClient]:
    client = make_client(fresh_sandbox_state)
    yield client
    client.close()


@pytest.fixture
def repo(sandbox: SandboxHandle) -> Scope:
    return Scope(ScopeKind.REPOSITORY, sandbox.env["GITHUB_REPOSITORY"])


@pytest.fixture
def runner_name() -> t.Callable[[], str]:
    prefix = f"itgh-{uuid.uuid4().hex[:6]}"
    return lambda: f"{prefix}-{uuid.uuid4().hex[:12]}"


def github_calls(sandbox: SandboxHandle, method: str, route: str) -> int:
    return sandbox.calls("github", method, route)


def test_list_runners_costs_one_request_per_100_runners(
    sandbox: SandboxHandle, gh: GithubClient, runner_name: t.Callable[[], str]
) -> None:
    scope = Scope(ScopeKind.REPOSITORY, f"{sandbox.env['GITHUB_ORG']}/infra")
    created = [gh.generate_jit_config(scope, runner_name(), ["self-hosted", "itgh"], 1)[0] for _unused in range(250)]
    try:
        sandbox.reset_counters()
        before = gh.total_calls
        listed = gh.list_runners(scope)
        assert {r.id for r in created} <= {r.id for r in listed}
        assert len(listed) >= 250
        assert github_calls(sandbox, "GET", RUNNERS) == math.ceil(len(listed) / 100)
        assert sandbox.calls("github") == math.ceil(len(listed) / 100)  # nothing else: no repo GET, no completion
        assert gh.total_calls - before == math.ceil(len(listed) / 100)
    finally:
        for runner in created:
            gh.delete_runner(scope, runner.id)


def test_jit_config_then_delete_204_then_404(
    sandbox: SandboxHandle, gh: GithubClient, repo: Scope, runner_name: t.Callable[[], str]
) -> None:
    name = runner_name()
    runner, config = gh.generate_jit_config(repo, name, ["self-hosted", "itgh"], 1)
    assert runner.name == name and runner.id > 0 and not runner.online
    assert set(runner.labels) >= {"self-hosted", "itgh"}
    assert config and config not in repr(gh.__dict__)
    assert any(r.id == runner.id for r in gh.list_runners(repo))
    assert gh.delete_runner(repo, runner.id) == "deleted"
    assert gh.delete_runner(repo, runner.id) == "not_found"


def test_duplicate_name_is_an_error_with_githubs_message(
    gh: GithubClient, repo: Scope, runner_name: t.Callable[[], str]
) -> None:
    name = runner_name()
    runner, _unused = gh.generate_jit_config(repo, name, ["self-hosted"], 1)
    try:
        with pytest.raises(GithubError) as info:
            gh.generate_jit_config(repo, name, ["self-hosted"], 1)
        assert info.value.status == 409
        assert "generate-jitconfig" in info.value.call
        assert info.value.detail and info.value.detail != "no message"
    finally:
        gh.delete_runner(repo, runner.id)


def _busy_user_data(config: str) -> str:
    return (
        "#!/bin/bash\nset -euo pipefail\nRUNNER_DIR=/opt/actions-runner\n"
        f"GHR_JIT_CONFIG='{config}'\n"
        '"${RUNNER_DIR}/run.sh" --jitconfig "${GHR_JIT_CONFIG}" || true\npoweroff\n'
    )


def test_delete_of_a_busy_runner_is_refused_with_422(
    sandbox: SandboxHandle,
    gh: GithubClient,
    repo: Scope,
    runner_name: t.Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", sandbox.env["OS_CLIENT_CONFIG_FILE"])
    cloud = CloudClient.connect(CloudOptions(cloud=sandbox.env["OS_CLOUD"], api_timeout=5))
    label = f"itgh-{uuid.uuid4().hex[:8]}"
    pool = parse_pool(
        {
            "name": "itgh",
            "repository": repo.name,
            "labels": ["self-hosted", label],
            "flavor": "m1.small",
            "image": "ubuntu-24.04-runner",
            "networks": ["runners-net"],
            "security_groups": ["runners-no-ingress"],
        }
    )
    name = runner_name()
    runner, config = gh.generate_jit_config(repo, name, ["self-hosted", label], 1)
    server_id = cloud.create_server(name, pool, _busy_user_data(config), {}, ["ghr-controller=itgh", "ghr-pool=itgh"])
    try:
        sandbox.control.post("/jobs", {"repository": repo.name, "labels": ["self-hosted", label], "duration": 1.5})
        wait_for(sandbox, lambda: _runner(sandbox, name).get("busy") is True, "the runner to be busy")
        sandbox.reset_counters()
        assert gh.delete_runner(repo, runner.id) == "busy"
        assert github_calls(sandbox, "DELETE", RUNNER) == 1  # a refusal is an answer, not retried
        assert not any(e["id"] == runner.id for e in sandbox.events("runner_delete"))
        # the ephemeral runner leaves GitHub when its job is done
        wait_for(sandbox, lambda: _runner(sandbox, name) == {}, "the runner to finish its job")
        assert gh.delete_runner(repo, runner.id) == "not_found"
    finally:
        cloud.delete_server(server_id)
        cloud.close()


def _runner(sandbox: SandboxHandle, name: str) -> dict[str, t.Any]:
    return next((r for r in sandbox.state()["github"]["runners"] if r["name"] == name), {})


def wait_for(sandbox: SandboxHandle, predicate: t.Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_queued_jobs_matching_labels(sandbox: SandboxHandle, gh: GithubClient, repo: Scope) -> None:
    label = f"itgh-{uuid.uuid4().hex[:8]}"  # no runner has it: the jobs stay queued
    made = sandbox.control.post("/jobs", {"repository": repo.name, "labels": ["self-hosted", label], "count": 2})
    other = sandbox.control.post("/jobs", {"repository": repo.name, "labels": ["self-hosted", label, "gpu"]})
    scan = gh.list_queued_jobs(repo)
    assert (scan.repositories, scan.skipped_repositories, scan.stopped_by) == (1, 0, None)
    ids = {j.id for j in scan.jobs if job_matches(j.labels, ["self-hosted", label, "linux"])}
    assert {j["id"] for j in made["jobs"]} <= ids
    assert other["jobs"][0]["id"] not in ids  # asks for a label the pool does not have
    assert all(j.repository == repo.name for j in scan.jobs)


def test_retries_5xx_then_succeeds(fresh_sandbox_state: SandboxHandle, gh: GithubClient, repo: Scope) -> None:
    sandbox = fresh_sandbox_state
    sandbox.add_fault(kind="status", service="github", method="GET", route=RUNNERS, status=502, count=2)
    sandbox.reset_counters()
    gh.list_runners(repo)
    assert github_calls(sandbox, "GET", RUNNERS) == 3
    assert gh.total_calls == 3


def test_persistent_5xx_gives_up_after_the_attempts(
    fresh_sandbox_state: SandboxHandle, gh: GithubClient, repo: Scope
) -> None:
    sandbox = fresh_sandbox_state
    sandbox.add_fault(kind="status", service="github", method="GET", route=RUNNERS, status=500, count=None)
    sandbox.reset_counters()
    with pytest.raises(GithubError) as info:
        gh.list_runners(repo)
    assert info.value.status == 500
    assert github_calls(sandbox, "GET", RUNNERS) == FAST_RETRY.attempts


def test_a_hang_is_cut_by_the_timeout_and_retried(fresh_sandbox_state: SandboxHandle, repo: Scope) -> None:
    sandbox = fresh_sandbox_state
    client = make_client(sandbox, timeout=1)
    sandbox.add_fault(kind="hang", service="github", method="GET", route=RUNNERS, hang_seconds=3, count=1)
    sandbox.reset_counters()
    client.list_runners(repo)
    assert github_calls(sandbox, "GET", RUNNERS) == 2
    client.close()


def test_a_persistent_hang_ends_in_an_error(fresh_sandbox_state: SandboxHandle, repo: Scope) -> None:
    sandbox = fresh_sandbox_state
    client = make_client(sandbox, timeout=1, retry=RetryPolicy(attempts=2, base=0.05, cap=0.1))
    sandbox.add_fault(kind="hang", service="github", method="GET", route=RUNNERS, hang_seconds=2, count=None)
    with pytest.raises(GithubError, match="no answer within 1 s"):
        client.list_runners(repo)
    client.close()


def test_a_timed_out_jit_request_is_not_repeated(
    fresh_sandbox_state: SandboxHandle, repo: Scope, runner_name: t.Callable[[], str]
) -> None:
    sandbox = fresh_sandbox_state
    client = make_client(sandbox, timeout=1)
    sandbox.add_fault(kind="hang", service="github", method="POST", route=JIT, hang_seconds=2, count=1)
    sandbox.reset_counters()
    with pytest.raises(GithubError, match="no answer"):
        client.generate_jit_config(repo, runner_name(), ["self-hosted"], 1)
    assert github_calls(sandbox, "POST", JIT) == 1
    client.close()


def test_a_connection_reset_is_retried(fresh_sandbox_state: SandboxHandle, gh: GithubClient, repo: Scope) -> None:
    sandbox = fresh_sandbox_state
    sandbox.add_fault(kind="reset", service="github", method="GET", route=RUNNERS, count=1)
    sandbox.reset_counters()
    gh.list_runners(repo)
    assert github_calls(sandbox, "GET", RUNNERS) == 2


def test_primary_rate_limit_with_a_short_reset_waits_then_succeeds(
    fresh_sandbox_state: SandboxHandle, gh: GithubClient, repo: Scope
) -> None:
    sandbox = fresh_sandbox_state
    sandbox.set_config({"github.fault_reset_seconds": 1.0})
    sandbox.add_fault(kind="github_rate_limit_primary", match={"method": "GET", "route": RUNNERS})
    sandbox.reset_counters()
    gh.list_runners(repo)
    assert github_calls(sandbox, "GET", RUNNERS) >= 2  # refused, then served after the reset


def test_primary_rate_limit_with_a_long_reset_raises(fresh_sandbox_state: SandboxHandle, repo: Scope) -> None:
    sandbox = fresh_sandbox_state
    # A reset longer than the client will wait (kept short so the shared budget recovers soon).
    sandbox.set_config({"github.fault_reset_seconds": 2.0})
    client = make_client(sandbox, max_rate_limit_wait=0.5)
    sandbox.add_fault(kind="github_rate_limit_primary", match={"method": "GET", "route": RUNNERS})
    sandbox.reset_counters()
    with pytest.raises(RateLimitError) as info:
        client.list_runners(repo)
    assert info.value.status == 403
    assert "rate limit" in str(info.value).lower()
    assert 0 < info.value.reset_in <= 3
    assert github_calls(sandbox, "GET", RUNNERS) == 1  # no retry storm
    wait_for(sandbox, lambda: _budget_back(client, repo), "the rate limit to reset", timeout=10)
    client.close()


def _budget_back(client: GithubClient, repo: Scope) -> bool:
    try:
        client.list_runners(repo)
    except RateLimitError:
        return False
    return True


def test_secondary_rate_limit_waits_for_retry_after(
    fresh_sandbox_state: SandboxHandle, gh: GithubClient, repo: Scope, runner_name: t.Callable[[], str]
) -> None:
    sandbox = fresh_sandbox_state
    sandbox.add_fault(
        kind="github_rate_limit_secondary",
        status=429,
        headers={"Retry-After": "1"},
        match={"method": "POST", "route": JIT},
    )
    sandbox.reset_counters()
    runner, _unused = gh.generate_jit_config(repo, runner_name(), ["self-hosted"], 1)
    assert github_calls(sandbox, "POST", JIT) == 2
    assert gh.delete_runner(repo, runner.id) == "deleted"


def test_the_rate_limit_budget_is_read_from_every_response(gh: GithubClient, repo: Scope) -> None:
    gh.list_runners(repo)
    remaining = gh.rate_status().remaining
    assert remaining is not None and remaining > 0


def test_github_app_installation_auth(sandbox: SandboxHandle, repo: Scope) -> None:
    env = sandbox.env
    key = pathlib.Path(env["GITHUB_APP_PRIVATE_KEY_FILE"]).read_text()
    auth = GithubAuth(
        app_id=env["GITHUB_APP_ID"], private_key=key, installation_id=int(env["GITHUB_APP_INSTALLATION_ID"])
    )
    client = GithubClient(auth, api_url=env["GITHUB_API_URL"], timeout=5)
    sandbox.reset_counters()
    client.list_runners(repo)
    client.list_runners(repo)
    assert client.total_calls == 3  # the installation token's request counts too
    assert sandbox.calls("github", "POST", "/app/installations/{installation_id}/access_tokens") == 1
    client.close()


def test_no_secret_in_errors(fresh_sandbox_state: SandboxHandle, repo: Scope, runner_name: t.Callable[[], str]) -> None:
    sandbox = fresh_sandbox_state
    env = sandbox.env
    secrets = [env["GITHUB_TOKEN"], pathlib.Path(env["GITHUB_APP_PRIVATE_KEY_FILE"]).read_text().strip()]
    texts: list[str] = []

    def capture(fn: t.Callable[[], object]) -> None:
        try:
            fn()
        except GithubError as exc:
            texts.append(str(exc) + repr(exc) + "".join(traceback.format_exception(exc)))
        else:
            raise AssertionError("expected a GithubError")

    bad = GithubClient(GithubAuth(token="ghp_" + "x" * 36), api_url=env["GITHUB_API_URL"], timeout=5)
    capture(lambda: bad.list_runners(repo))
    client = make_client(sandbox, timeout=1, retry=RetryPolicy(attempts=1))
    _unused, config = client.generate_jit_config(repo, name := runner_name(), ["self-hosted"], 1)
    secrets.append(config)
    capture(lambda: client.generate_jit_config(repo, name, ["self-hosted"], 1))  # 409
    sandbox.add_fault(kind="status", service="github", status=500, count=1)
    capture(lambda: client.list_runners(repo))
    sandbox.add_fault(kind="hang", service="github", hang_seconds=2, count=1)
    capture(lambda: client.list_runners(repo))
    assert len(texts) == 4
    for text in texts:
        for secret in secrets:
            assert secret not in text
    assert "401" in texts[0]
    runner = next(r for r in client.list_runners(repo) if r.name == name)
    client.delete_runner(repo, runner.id)
    client.close()
    bad.close()


def test_organization_scope(sandbox: SandboxHandle, gh: GithubClient, runner_name: t.Callable[[], str]) -> None:
    org = Scope(ScopeKind.ORGANIZATION, sandbox.env["GITHUB_ORG"])
    assert gh.runner_group_id(org, None) == 1
    sandbox.reset_counters()
    with pytest.raises(ConfigError, match="no runner group named 'gpu-runners'"):
        gh.runner_group_id(org, "gpu-runners")
    assert sandbox.calls("github", "GET", "/orgs/{org}/actions/runner-groups") == 1
    runner, config = gh.generate_jit_config(org, runner_name(), ["self-hosted", "itgh"], 1)
    assert config
    assert any(r.id == runner.id for r in gh.list_runners(org))
    assert gh.delete_runner(org, runner.id) == "deleted"
    assert gh.delete_runner(org, runner.id) == "not_found"


def test_queued_jobs_of_an_organization_look_at_its_repositories(sandbox: SandboxHandle, gh: GithubClient) -> None:
    org = Scope(ScopeKind.ORGANIZATION, sandbox.env["GITHUB_ORG"])
    label = f"itgh-{uuid.uuid4().hex[:8]}"
    made = sandbox.control.post("/jobs", {"repository": f"{org.name}/infra", "labels": [label]})
    sandbox.reset_counters()
    scan = gh.list_queued_jobs(org)
    queued = [j for j in scan.jobs if job_matches(j.labels, [label])]
    assert [(j.id, j.repository) for j in queued] == [(made["jobs"][0]["id"], f"{org.name}/infra")]
    assert sandbox.calls("github", "GET", "/orgs/{org}/repos") == 1


def test_runner_exists_tells_200_from_404(
    sandbox: SandboxHandle, gh: GithubClient, repo: Scope, runner_name: t.Callable[[], str]
) -> None:
    runner = gh.generate_jit_config(repo, runner_name(), ["self-hosted"], 1)[0]
    sandbox.reset_counters()
    assert gh.runner_exists(repo, runner.id) is True
    assert gh.delete_runner(repo, runner.id) == "deleted"
    assert gh.runner_exists(repo, runner.id) is False
    assert sandbox.calls("github", "GET") == 2
