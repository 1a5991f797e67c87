"""The sandbox for integration tests: started once per session with the launcher `up` uses.

`sandbox` gives the env values (as in DIR/env), the directory, and small helpers for the
control API. Tests reach the simulators themselves only through the real clients.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import subprocess
import time
import typing as t
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pymongo
import pytest
import yaml

from tests.sandbox import launcher
from tests.sandbox.mongo import MongoServer


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


# Backends: the cloud side of a scenario ----------------------------------------------------
#
# A scenario that takes the `backend` fixture runs against the sandbox's OpenStack by
# default. Decorated with `both_backends`, it runs twice: against the sandbox and against
# unmodified Nova (tests/sandbox/realnova, marker `realnova`). The GitHub side is always
# the sandbox's simulator; on real Nova the sandbox's runner agents start from the servers'
# user data (tests/sandbox/github/nova_watch.py). Scenarios that need the sandbox's fault
# injection are marked `sandbox_only` with the reason.

_CLOUD_SERVICES = frozenset({"keystone", "nova", "glance", "neutron"})


@dataclasses.dataclass
class Backend:
    """One cloud for the scenarios: its clouds.yaml and cloud names, pool settings, views and counters."""

    name: str  # "sandbox" or "nova"
    sandbox: SandboxHandle
    clouds_yaml: str
    cloud: str
    admin_cloud: str
    pool_defaults: dict[str, t.Any]
    nova: t.Any = None  # realnova.RealNova
    admin_client: t.Any = None  # realnova.client.NovaClient (nova)
    _saved_quota: dict[str, int] | None = None

    @property
    def env(self) -> dict[str, str]:
        """The sandbox's env values with this cloud's OS_* ones."""
        return {**self.sandbox.env, "OS_CLIENT_CONFIG_FILE": self.clouds_yaml, "OS_CLOUD": self.cloud}

    def servers(self, tag: str | None = None) -> list[dict[str, t.Any]]:
        """Servers (with `tag`) that are not being deleted, as plain dicts (status, fault, tags, ...)."""
        if self.nova is None:
            found = self.sandbox.state()["openstack"]["servers"]
            found = [s for s in found if tag is None or tag in s.get("tags", [])]
        else:
            found = [{**s, "task_state": s.get("OS-EXT-STS:task_state")} for s in self.admin_servers(tag)]
        return [s for s in found if s["status"] != "DELETED" and s.get("task_state") != "deleting"]

    def admin_servers(self, tag: str | None = None) -> list[dict[str, t.Any]]:
        """The compute API's server listing (microversion 2.52) as this cloud's admin sees it."""
        query = "?" + urllib.parse.urlencode({"tags": tag}) if tag else ""
        if self.admin_client is not None:
            return t.cast(list[dict[str, t.Any]], self.admin_client.servers(query))
        status, answer = self._sandbox_admin("GET", f"/servers/detail{query}")
        assert status == 200, answer
        return t.cast(list[dict[str, t.Any]], answer["servers"])

    def admin_action(self, server_id: str, action: dict[str, t.Any]) -> tuple[int, t.Any]:
        """A server action (os-resetState, ...) as this cloud's admin: (status, body)."""
        path = f"/servers/{server_id}/action"
        if self.admin_client is not None:
            return t.cast(tuple[int, t.Any], self.admin_client.request("POST", path, action))
        return self._sandbox_admin("POST", path, action)

    def _sandbox_admin(self, method: str, path: str, body: t.Any = None) -> tuple[int, t.Any]:
        import openstack  # openstacksdk reads OS_CLIENT_CONFIG_FILE, which the `backend` fixture sets

        with openstack.connect(cloud=self.admin_cloud) as admin:
            response = admin.compute.request(path, method, json=body, microversion="2.52")
            return response.status_code, response.json() if response.content else None

    def counters(self) -> list[dict[str, t.Any]]:
        """The counted API calls: GitHub's from the sandbox, the cloud's from this backend."""
        sandbox = self.sandbox.counters()
        if self.nova is None:
            return sandbox
        github = [c for c in sandbox if c["service"] not in _CLOUD_SERVICES]
        return github + t.cast(list[dict[str, t.Any]], self.nova.control("GET", "/counters"))

    def reset_counters(self) -> None:
        self.sandbox.reset_counters()
        if self.nova is not None:
            self.nova.control("POST", "/counters/reset")

    def calls(self, service: str, method: str | None = None, route: str | None = None) -> int:
        return sum(
            c["count"]
            for c in self.counters()
            if c["service"] == service and method in (None, c["method"]) and route in (None, c["route"])
        )

    # Quotas, by the cloud's own means ----------------------------------------------------------
    def instances_in_use(self) -> int:
        if self.nova is None:
            return int(self.sandbox.state()["openstack"]["usage"]["instances"])
        status, answer = self.admin_client.request("GET", f"/os-quota-sets/{self.admin_client.project_id}/detail")
        assert status == 200, answer
        return int(answer["quota_set"]["instances"]["in_use"])

    def settled_instances(self, timeout: float = 30.0) -> int:
        """Instances in use once no server of the project is being deleted (earlier tests' deletes may run on)."""
        deadline = time.monotonic() + timeout
        while True:
            servers = self.admin_servers()
            going = [s for s in servers if s["status"] == "DELETED" or s.get("OS-EXT-STS:task_state") == "deleting"]
            used = self.instances_in_use()
            if not going and used == len(servers):
                return used
            assert time.monotonic() < deadline, f"deletes still running: {[s['name'] for s in going]}"
            time.sleep(0.1)

    def set_instance_quota(self, instances: int) -> None:
        """The project's instance quota (restored after the test)."""
        if self.nova is None:
            if self._saved_quota is None:
                self._saved_quota = {"instances": self.sandbox.config()["openstack.quota.instances"]}
            self.sandbox.set_config({"openstack.quota.instances": instances})
            return
        path = f"/os-quota-sets/{self.admin_client.project_id}"
        if self._saved_quota is None:
            status, answer = self.admin_client.request("GET", path)
            assert status == 200, answer
            self._saved_quota = {"instances": answer["quota_set"]["instances"]}
        # force: Nova refuses a limit below what is in use otherwise.
        status, answer = self.admin_client.request("PUT", path, {"quota_set": {"instances": instances, "force": True}})
        assert status == 200, answer

    def restore(self) -> None:
        """Undo what the test changed through this backend (the quota)."""
        if self._saved_quota is None:
            return
        if self.nova is None:
            self.sandbox.set_config({"openstack.quota.instances": self._saved_quota["instances"]})
        else:
            path = f"/os-quota-sets/{self.admin_client.project_id}"
            self.admin_client.request("PUT", path, {"quota_set": {**self._saved_quota, "force": True}})
        self._saved_quota = None


BACKENDS = ["sandbox", pytest.param("nova", marks=pytest.mark.realnova)]
#: Run a scenario against the sandbox and against real Nova.
both_backends = pytest.mark.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture(scope="session")
def real_nova(sandbox: SandboxHandle, tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Backend]:
    """Unmodified Nova for the session (installed once into GHR_CACHE_DIR), with runner agents on its servers."""
    from tests.sandbox import realnova
    from tests.sandbox.realnova.client import NovaClient

    nova = realnova.start(tmp_path_factory.mktemp("realnova"))
    try:
        # One clouds.yaml with the sandbox's clouds and Nova's, so either can be named.
        merged = yaml.safe_load(pathlib.Path(sandbox.env["OS_CLIENT_CONFIG_FILE"]).read_text())
        merged["clouds"].update(yaml.safe_load(nova.clouds_yaml.read_text())["clouds"])
        clouds_yaml = nova.workdir / "all-clouds.yaml"
        clouds_yaml.write_text(yaml.safe_dump(merged))
        clouds_yaml.chmod(0o600)
        sandbox.control.post("/clouds", {"name": "realnova", "auth": nova.auth(admin=True), "interval": 0.2})
        admin = NovaClient(nova.auth(admin=True))
        admin.login()
        defaults = {
            "flavor": "m1.small",
            "image": nova.info["image_id"],  # Nova's in-process Glance: by id, no Image API
            "networks": [nova.info["network_id"]],  # and Neutron: by id, no Network API
            "security_groups": [],  # Nova applies the project's `default` group
        }
        yield Backend("nova", sandbox, str(clouds_yaml), realnova.CLOUD, realnova.ADMIN_CLOUD, defaults, nova, admin)
        with contextlib.suppress(ControlError):
            sandbox.control.delete("/clouds/realnova")
    finally:
        nova.stop()


@pytest.fixture(scope="session")
def sandbox_backend(sandbox: SandboxHandle) -> Backend:
    defaults = {
        "flavor": "m1.small",
        "image": "ubuntu-24.04-runner",
        "networks": ["runners-net"],
        "security_groups": ["runners-no-ingress"],
    }
    return Backend("sandbox", sandbox, sandbox.env["OS_CLIENT_CONFIG_FILE"], "sandbox", "sandbox-admin", defaults)


@pytest.fixture
def backend(
    request: pytest.FixtureRequest, sandbox_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> t.Iterator[Backend]:
    """The cloud of this test: the sandbox unless the test is parametrised with `both_backends`."""
    name = getattr(request, "param", "sandbox")
    chosen: Backend = request.getfixturevalue("real_nova") if name == "nova" else sandbox_backend
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", chosen.clouds_yaml)
    monkeypatch.setenv("OS_CLOUD", chosen.cloud)
    yield chosen
    chosen.restore()


@pytest.fixture
def database(mongodb: MongoServer) -> t.Iterator[str]:
    """A fresh database on the test MongoDB server, dropped after the test."""
    name = f"ghr_test_{uuid.uuid4().hex[:10]}"
    yield name
    client: pymongo.MongoClient[dict[str, t.Any]] = pymongo.MongoClient(mongodb.uri, serverSelectionTimeoutMS=5000)
    client.drop_database(name)
    client.close()


@pytest.fixture
def raw_db(mongodb: MongoServer, database: str) -> t.Iterator[t.Any]:
    """The test database through a plain pymongo client, to write what our code would refuse and read what it wrote."""
    client: pymongo.MongoClient[dict[str, t.Any]] = pymongo.MongoClient(
        mongodb.uri, serverSelectionTimeoutMS=5000, tz_aware=True
    )
    yield client[database]
    client.close()
