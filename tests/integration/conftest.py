"""The sandbox for integration tests: started once per session with the launcher `up` uses.

`sandbox` gives the env values (as in DIR/env), the directory, and small helpers for the
control API. Tests reach the simulators themselves only through the real clients.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import subprocess
import typing as t
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.sandbox import launcher


class ControlError(AssertionError):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"control API {method} {path}: HTTP {status}: {body}")
        self.status = status
        self.body = body


@dataclasses.dataclass
class Control:
    """JSON over HTTP to SANDBOX_CONTROL_URL."""

    url: str
    timeout: float = 10.0

    def request(self, method: str, path: str, body: t.Any = None) -> t.Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise ControlError(method, path, exc.code, exc.read().decode(errors="replace")) from None
        return json.loads(raw) if raw else None

    def get(self, path: str) -> t.Any:
        return self.request("GET", path)

    def post(self, path: str, json: t.Any = None) -> t.Any:
        return self.request("POST", path, {} if json is None else json)

    def delete(self, path: str) -> t.Any:
        return self.request("DELETE", path)


@dataclasses.dataclass
class SandboxHandle:
    dir: pathlib.Path
    env: dict[str, str]
    control: Control
    process: subprocess.Popen[bytes] | None = None

    def counters(self) -> list[dict[str, t.Any]]:
        return t.cast(list[dict[str, t.Any]], self.control.get("/counters"))

    def calls(self, service: str, method: str | None = None, route: str | None = None) -> int:
        """Counted API calls of a service, optionally of one method and route template."""
        return sum(
            c["count"]
            for c in self.counters()
            if c["service"] == service and method in (None, c["method"]) and route in (None, c["route"])
        )

    def reset_counters(self) -> None:
        self.control.post("/counters/reset")

    def events(self, type: str | None = None, since: int = 0) -> list[dict[str, t.Any]]:
        query = {"since": since} | ({"type": type} if type else {})
        return t.cast(list[dict[str, t.Any]], self.control.get("/events?" + urllib.parse.urlencode(query)))

    def add_fault(self, **fields: t.Any) -> dict[str, t.Any]:
        """POST /faults with a Fault's fields (kind, service, method, route, status, match, count, ...)."""
        return t.cast(dict[str, t.Any], self.control.post("/faults", fields))

    def clear_faults(self) -> None:
        self.control.delete("/faults")

    def config(self) -> dict[str, t.Any]:
        return t.cast(dict[str, t.Any], self.control.get("/config"))

    def set_config(self, values: dict[str, t.Any] | None = None, /, **kv: t.Any) -> dict[str, t.Any]:
        """Change tunables: set_config({"openstack.boot_delay": 0.1}) or set_config(openstack__boot_delay=0.1)."""
        changes = dict(values or {}) | {k.replace("__", "."): v for k, v in kv.items()}
        return t.cast(dict[str, t.Any], self.control.post("/config", changes))

    def reset_config(self) -> dict[str, t.Any]:
        return t.cast(dict[str, t.Any], self.control.post("/config/reset"))

    def state(self) -> dict[str, t.Any]:
        return t.cast(dict[str, t.Any], self.control.get("/state"))


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[SandboxHandle]:
    """The whole sandbox (OpenStack, GitHub, runner VMs, control API, MongoDB) for the session.

    Every GitHub response and webhook it produces in the session is validated against
    GitHub's OpenAPI description and webhook schemas; a violation fails the session.
    """
    workdir = tmp_path_factory.mktemp("sandbox")
    saved = os.environ.get("GHR_SANDBOX_VALIDATE")
    os.environ["GHR_SANDBOX_VALIDATE"] = "1"
    try:
        process = launcher.up(workdir)
    finally:
        if saved is None:
            os.environ.pop("GHR_SANDBOX_VALIDATE", None)
        else:
            os.environ["GHR_SANDBOX_VALIDATE"] = saved
    try:
        env = launcher.read_env(workdir)
        handle = SandboxHandle(workdir, env, Control(env["SANDBOX_CONTROL_URL"]), process)
        yield handle
        validation = handle.control.get("/validation")
        assert validation["enabled"], "schema validation was off"
        assert validation["violations"] == [], f"responses that break GitHub's schemas: {validation['violations'][:5]}"
    finally:
        launcher.down(workdir, proc=process)


@pytest.fixture
def fresh_sandbox_state(sandbox: SandboxHandle) -> t.Iterator[SandboxHandle]:
    """No faults and default tunables before and after the test."""
    sandbox.clear_faults()
    sandbox.reset_config()
    yield sandbox
    sandbox.clear_faults()
    sandbox.reset_config()
