"""Helpers for the GitHub simulator's tests, on the session's shared sandbox.

Everything goes through PyGithub, openstacksdk or the control API; the helpers keep
the shared sandbox tidy for the other tests (runners deleted, webhooks unsubscribed,
faults and config reset).
"""

from __future__ import annotations

import contextlib
import time
import typing as t
import uuid

import github
from github import Auth

if t.TYPE_CHECKING:
    from tests.integration.conftest import SandboxHandle

# Short timings so the tests stay quick; validation of every response and webhook on.
TEST_CONFIG: dict[str, t.Any] = {
    "runner.start_delay": 0.05,
    "runner.vm_poll_interval": 0.05,
    "github.lost_job_timeout": 0.3,
    "github.webhook_timeout": 1.0,
    "github.validate": True,
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_for(predicate: t.Callable[[], t.Any], timeout: float = 10.0, what: str = "condition") -> t.Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class GithubWorld:
    """The sandbox as the GitHub simulator's tests use it; `close()` undoes what a test left behind."""

    def __init__(self, sandbox: SandboxHandle) -> None:
        self.sandbox = sandbox
        self.env = sandbox.env
        self.control = sandbox.control
        self._runners: list[tuple[str, int]] = []  # (scope path, runner id) to delete at the end
        self._hooks: list[int] = []
        sandbox.clear_faults()
        sandbox.reset_config()
        sandbox.set_config(TEST_CONFIG)
        self._errors_before = len(sandbox.events("sandbox_error"))

    def close(self) -> None:
        gh = self.github()
        for scope, runner_id in self._runners:
            # 404: gone already; 422: busy until its job ends, then GitHub removes it (ephemeral).
            with contextlib.suppress(github.GithubException):
                gh.requester.requestJsonAndCheck("DELETE", f"{scope}/actions/runners/{runner_id}")
        for hook in self._hooks:
            self.control.delete(f"/webhooks/{hook}")
        self.sandbox.clear_faults()
        self.sandbox.reset_config()
        # An injected primary rate limit leaves the token's budget empty until its reset (seconds).
        core = gh.get_rate_limit().resources.core  # GET /rate_limit costs nothing
        if core.remaining == 0:
            time.sleep(max(0.0, core.reset.timestamp() - time.time()) + 0.05)
        # A simulator bug (an exception in the ticker, a hook or the webhook thread) fails the test.
        errors = self.sandbox.events("sandbox_error")[self._errors_before :]
        assert errors == [], errors

    # Clients -----------------------------------------------------------------------------
    def github(self, **kwargs: t.Any) -> github.Github:
        """PyGithub with the sandbox token; no client-side throttling, no retries unless asked."""
        options: dict[str, t.Any] = {
            "base_url": self.env["GITHUB_API_URL"],
            "auth": Auth.Token(self.env["GITHUB_TOKEN"]),
            "seconds_between_requests": None,
            "seconds_between_writes": None,
            "retry": None,
            "timeout": 10,
        }
        options.update(kwargs)
        return github.Github(**options)

    def app_auth(self) -> Auth.AppAuth:
        with open(self.env["GITHUB_APP_PRIVATE_KEY_FILE"]) as fh:
            return Auth.AppAuth(int(self.env["GITHUB_APP_ID"]), fh.read())

    # Runners and jobs ----------------------------------------------------------------------
    def jit(self, scope: str, labels: list[str], name: str | None = None, **extra: t.Any) -> dict[str, t.Any]:
        """A JIT runner in `scope` ("/repos/o/r" or "/orgs/o"), deleted again when the test ends."""
        body = {"name": name or unique("r"), "runner_group_id": 1, "labels": labels, **extra}
        _unused, data = self.github().requester.requestJsonAndCheck(
            "POST", f"{scope}/actions/runners/generate-jitconfig", input=body
        )
        self._runners.append((scope, int(data["runner"]["id"])))
        return t.cast(dict[str, t.Any], data)

    def forget(self, scope: str, runner_id: int) -> None:
        self._runners.append((scope, runner_id))

    def start_agent(self, encoded: str, name: str) -> None:
        """A runner process (without a VM) presenting `encoded`, as `run.sh --jitconfig` would."""
        self.control.post("/runner-agents", {"encoded_jit_config": encoded, "name": name})

    def runner(self, scope: str, runner_id: int) -> dict[str, t.Any]:
        _unused, data = self.github().requester.requestJsonAndCheck("GET", f"{scope}/actions/runners/{runner_id}")
        return t.cast(dict[str, t.Any], data)

    def wait_online(self, scope: str, runner_id: int) -> None:
        wait_for(lambda: self.runner(scope, runner_id)["status"] == "online", what=f"runner {runner_id} online")

    def enqueue(self, repository: str, labels: list[str], **extra: t.Any) -> dict[str, t.Any]:
        return t.cast(
            dict[str, t.Any], self.control.post("/jobs", {"repository": repository, "labels": labels, **extra})
        )

    def job(self, job_id: int) -> dict[str, t.Any]:
        return t.cast(dict[str, t.Any], self.control.get(f"/jobs?id={job_id}")["jobs"][0])

    # Webhooks ------------------------------------------------------------------------------------
    def subscribe(self, url: str, **extra: t.Any) -> int:
        hook = int(self.control.post("/webhooks", {"url": url, **extra})["id"])
        self._hooks.append(hook)
        return hook

    def webhooks_idle(self) -> None:
        # A `since` past every delivery: only the pending count comes back.
        wait_for(lambda: self.control.get("/deliveries?since=1000000000")["pending"] == 0, what="webhooks delivered")

    # Observation -------------------------------------------------------------------------------
    def events(self, type_: str, **match: t.Any) -> list[dict[str, t.Any]]:
        return [e for e in self.sandbox.events(type_) if all(e.get(k) == v for k, v in match.items())]

    def calls(self, method: str, route: str) -> int:
        return self.sandbox.calls("github", method, route)

    def add_fault(self, **fields: t.Any) -> None:
        self.sandbox.add_fault(**fields)

    def set_config(self, **values: t.Any) -> None:
        self.sandbox.set_config({k.replace("__", "."): v for k, v in values.items()})
