"""GithubClient's limits against the GitHub simulator: write pacing, holds after rate limits, queued-job budgets."""

from __future__ import annotations

import typing as t
import uuid

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import RateLimitError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._github import GithubAuth, GithubClient
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import Scope, ScopeKind
from ansible_collections.selfhosted.github_runners.plugins.module_utils._ratelimit import TokenBucket
from ansible_collections.selfhosted.github_runners.plugins.module_utils._retry import RetryPolicy
from tests.integration.conftest import SandboxHandle

pytestmark = pytest.mark.sandbox

JIT = "/repos/{owner}/{repo}/actions/runners/generate-jitconfig"
RUNS = "/repos/{owner}/{repo}/actions/runs"
FAST_RETRY = RetryPolicy(attempts=3, base=0.05, cap=0.2, budget=30.0)


def make_client(sandbox: SandboxHandle, **kwargs: t.Any) -> GithubClient:
    kwargs.setdefault("retry", FAST_RETRY)
    return GithubClient(
        GithubAuth(token=sandbox.env["GITHUB_TOKEN"]), api_url=sandbox.env["GITHUB_API_URL"], timeout=5, **kwargs
    )


@pytest.fixture
def repo(sandbox: SandboxHandle) -> Scope:
    return Scope(ScopeKind.REPOSITORY, sandbox.env["GITHUB_REPOSITORY"])


def name() -> str:
    return f"itlim-{uuid.uuid4().hex[:12]}"


def test_mutating_requests_pass_the_write_bucket_and_listings_do_not(
    fresh_sandbox_state: SandboxHandle, repo: Scope
) -> None:
    slept: list[float] = []
    # A bucket whose clock stands still: every token after the burst costs a full refill.
    client = make_client(fresh_sandbox_state, write_bucket=TokenBucket(2, 60, clock=lambda: 0.0), sleep=slept.append)
    runners = [client.generate_jit_config(repo, name(), ["self-hosted"], 1)[0] for _runner in range(2)]
    client.list_runners(repo)
    client.list_runners(repo)
    for runner in runners:
        assert client.delete_runner(repo, runner.id) == "deleted"
    assert slept == [1.0, 2.0]  # the two deletions; the burst covered the POSTs, listings take no token
    assert client.rate_status().write_wait == 3.0
    client.close()


def test_clients_of_one_credential_can_share_a_bucket(fresh_sandbox_state: SandboxHandle, repo: Scope) -> None:
    bucket = TokenBucket(1, 60, clock=lambda: 0.0)
    slept: list[float] = []
    first, second = (make_client(fresh_sandbox_state, write_bucket=bucket, sleep=slept.append) for _c in range(2))
    made = [client.generate_jit_config(repo, name(), ["self-hosted"], 1)[0] for client in (first, second)]
    assert slept == [1.0]
    for runner in made:
        first.delete_runner(repo, runner.id)
    first.close()
    second.close()


def test_a_secondary_limit_not_waited_out_holds_back_mutating_requests_only(
    fresh_sandbox_state: SandboxHandle, repo: Scope
) -> None:
    sandbox = fresh_sandbox_state
    client = make_client(sandbox, max_rate_limit_wait=5)
    sandbox.add_fault(
        kind="github_rate_limit_secondary", headers={"Retry-After": "120"}, match={"method": "POST", "route": JIT}
    )
    sandbox.reset_counters()
    with pytest.raises(RateLimitError, match="secondary rate limit"):
        client.generate_jit_config(repo, name(), ["self-hosted"], 1)
    not_before = client.rate_status().not_before
    assert not_before is not None
    with pytest.raises(RateLimitError, match="not sent"):
        client.generate_jit_config(repo, name(), ["self-hosted"], 1)
    with pytest.raises(RateLimitError, match="not sent"):
        client.delete_runner(repo, 1)
    client.list_runners(repo)  # listings go on
    assert sandbox.calls("github", "POST", JIT) == 1
    assert sandbox.calls("github", "DELETE") == 0
    # A new client (the next run) learns the hold from the pool's state, not from GitHub.
    later = make_client(sandbox)
    later.hold_mutations_until(not_before)
    with pytest.raises(RateLimitError, match="not sent"):
        later.generate_jit_config(repo, name(), ["self-hosted"], 1)
    assert sandbox.calls("github", "POST", JIT) == 1
    client.close()
    later.close()


def queue_jobs(sandbox: SandboxHandle, repository: str, label: str) -> None:
    sandbox.control.post("/jobs", {"repository": repository, "labels": ["self-hosted", label]})


def test_queued_jobs_stop_at_the_request_cap_and_say_what_they_skipped(
    fresh_sandbox_state: SandboxHandle,
) -> None:
    sandbox = fresh_sandbox_state
    org = Scope(ScopeKind.ORGANIZATION, sandbox.env["GITHUB_ORG"])
    label = f"itlim-{uuid.uuid4().hex[:8]}"  # no runner has it: the jobs stay queued
    for repository in (f"{org.name}/app", f"{org.name}/infra"):
        queue_jobs(sandbox, repository, label)
    client = make_client(sandbox)
    full = client.list_queued_jobs(org)
    assert (full.repositories, full.skipped_repositories, full.stopped_by) == (2, 0, None)
    assert {j.repository for j in full.jobs if label in j.labels} == {f"{org.name}/app", f"{org.name}/infra"}

    sandbox.reset_counters()
    capped = client.list_queued_jobs(org, max_requests=3)
    assert capped.requests == 3 == sandbox.calls("github")
    assert capped.stopped_by == "max_requests"
    assert capped.skipped_repositories is not None and capped.skipped_repositories >= 1
    assert capped.repositories + capped.skipped_repositories == 2

    sandbox.reset_counters()
    floored = client.list_queued_jobs(org, rate_limit_floor=10**9)
    assert (floored.requests, floored.jobs, floored.stopped_by) == (0, (), "rate_limit_floor")
    assert floored.skipped_repositories is None  # not even the repositories were listed
    assert sandbox.calls("github") == 0
    client.close()


def test_a_rate_limit_stops_the_queued_jobs_count_without_failing_it(fresh_sandbox_state: SandboxHandle) -> None:
    sandbox = fresh_sandbox_state
    repo = Scope(ScopeKind.REPOSITORY, f"{sandbox.env['GITHUB_ORG']}/infra")
    sandbox.set_config({"github.fault_reset_seconds": 1.0})
    client = make_client(sandbox, max_rate_limit_wait=0.1)
    sandbox.add_fault(kind="github_rate_limit_primary", match={"method": "GET", "route": RUNS})
    scan = client.list_queued_jobs(repo)
    assert (scan.stopped_by, scan.skipped_repositories, scan.repositories) == ("rate_limited", 1, 0)
    client.close()


def test_a_queued_jobs_count_cut_short_keeps_the_jobs_it_found(fresh_sandbox_state: SandboxHandle) -> None:
    """With more queued runs than the request cap allows, the count is what was found, not zero."""
    sandbox = fresh_sandbox_state
    repo = Scope(ScopeKind.REPOSITORY, sandbox.env["GITHUB_REPOSITORY"])
    label = f"itcut-{uuid.uuid4().hex[:8]}"  # no runner has it: the jobs stay queued
    for _job in range(3):
        queue_jobs(sandbox, repo.name, label)
    client = make_client(sandbox)
    full = client.list_queued_jobs(repo)
    assert full.stopped_by is None and sum(1 for j in full.jobs if label in j.labels) == 3

    capped = client.list_queued_jobs(repo, max_requests=full.requests - 1)  # the last run's jobs not asked for
    assert capped.stopped_by == "max_requests"
    assert (capped.repositories, capped.skipped_repositories) == (0, 1)
    # Earlier tests' runs may be in the listing too; of these three runs, at most one is cut off.
    assert sum(1 for j in capped.jobs if label in j.labels) >= 2
    client.close()
