"""Helpers for reconcile tests against the sandbox: real clients, real ansible-playbook runs."""

from __future__ import annotations

import dataclasses
import itertools
import os
import pathlib
import time
import typing as t

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import PoolSpec, parse_pool
from ansible_collections.selfhosted.github_runners.plugins.module_utils._github import GithubAuth, GithubClient
from ansible_collections.selfhosted.github_runners.plugins.module_utils._lock import FileLock
from ansible_collections.selfhosted.github_runners.plugins.module_utils._openstack import CloudClient, CloudOptions
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reconcile import (
    ReconcileOptions,
    Reconciler,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._report import ReconcileReport
from tests.integration.conftest import Backend
from tests.integration.playbook import ansible_env, run_task

MUTATING_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Requests that change nothing the user owns: authentication.
AUTH_ROUTES = ("/v3/auth/tokens", "/app/installations/{installation_id}/access_tokens")
_pool_names = (f"p{i}" for i in itertools.count(1))


def mutating(counters: t.Iterable[t.Mapping[str, t.Any]]) -> list[dict[str, t.Any]]:
    """The counted calls that create or delete something (auth requests excluded)."""
    return [
        dict(c)
        for c in counters
        if c["method"] in MUTATING_METHODS and not any(c["route"].endswith(r) for r in AUTH_ROUTES)
    ]


def pool_dict(sandbox: t.Any, **overrides: t.Any) -> dict[str, t.Any]:
    """A pool spec (module option shape) with a fresh name, so tests do not see each other's runners.

    `sandbox` is the sandbox handle or a `Backend`, whose flavor, image and networks it then uses.
    """
    spec: dict[str, t.Any] = {
        "name": next(_pool_names),
        "repository": sandbox.env["GITHUB_REPOSITORY"],
        "labels": ["self-hosted", "linux"],
        "min_idle": 0,
        "max_runners": 5,
        "flavor": "m1.small",
        "image": "ubuntu-24.04-runner",
        "networks": ["runners-net"],
        "security_groups": ["runners-no-ingress"],
        "bootstrap_timeout": 20,
        "offline_grace": 2,
        "registration_grace": 2,
        "max_lifetime": "1h",
    }
    spec.update(getattr(sandbox, "pool_defaults", {}))
    spec.update(overrides)
    return spec


@dataclasses.dataclass
class Core:
    """The core wired to the sandbox with the real clients, as the modules wire it."""

    sandbox: t.Any
    lock_dir: pathlib.Path
    controller_id: str = "it"
    backend: Backend | None = None  # the cloud; None = the sandbox's

    def github(self, timeout: float = 5.0, **kwargs: t.Any) -> GithubClient:
        env = self.sandbox.env
        return GithubClient(
            GithubAuth(token=env["GITHUB_TOKEN"]), api_url=env["GITHUB_API_URL"], timeout=timeout, **kwargs
        )

    def cloud(self, timeout: float = 5.0, cloud: str | None = None) -> CloudClient:
        """A client of the backend's cloud (or of the clouds.yaml entry `cloud`, e.g. its admin)."""
        cloud = cloud or (self.backend.cloud if self.backend is not None else self.sandbox.env["OS_CLOUD"])
        return CloudClient.connect(CloudOptions(cloud=cloud, api_timeout=timeout))

    def reconciler(self, cloud: str | None = None, **github_kwargs: t.Any) -> Reconciler:
        return Reconciler(
            self.github(**github_kwargs),
            self.cloud(cloud=cloud),
            lambda key: FileLock(str(self.lock_dir / f"{key}.lock"), timeout=60),
        )

    def reconcile(self, pools: t.Sequence[dict[str, t.Any]], **options: t.Any) -> ReconcileReport:
        specs = [parse_pool(p) for p in pools]
        return self.reconciler().run(specs, ReconcileOptions(self.controller_id, **options))

    def spec(self, pool: dict[str, t.Any]) -> PoolSpec:
        return parse_pool(pool)

    # Sandbox views ------------------------------------------------------------
    def servers(self, pool: str) -> list[dict[str, t.Any]]:
        tag = f"ghr-pool={pool}"
        if self.backend is not None:
            return self.backend.servers(tag)
        state = self.sandbox.control.get("/state")
        return [s for s in state["openstack"]["servers"] if tag in s.get("tags", []) and s.get("status") != "DELETED"]

    def runners(self, pool: str) -> list[dict[str, t.Any]]:
        state = self.sandbox.control.get("/state")
        prefix = f"{self.controller_id}-{pool}-"
        return [r for r in state["github"]["runners"] if r["name"].startswith(prefix)]

    def wait_for(self, what: str, predicate: t.Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.1)

    def wait_idle(self, pool: str, count: int, timeout: float = 30.0) -> None:
        self.wait_for(
            f"{count} idle runners in pool {pool}",
            lambda: sum(1 for r in self.runners(pool) if r["status"] == "online" and not r["busy"]) >= count,
            timeout,
        )


@pytest.fixture(scope="session", autouse=True)
def _openstack_env(sandbox: t.Any) -> t.Iterator[None]:
    """openstacksdk reads the sandbox's clouds.yaml through OS_CLIENT_CONFIG_FILE."""
    saved = {k: os.environ.get(k) for k in ("OS_CLIENT_CONFIG_FILE", "OS_CLOUD")}
    os.environ["OS_CLIENT_CONFIG_FILE"] = sandbox.env["OS_CLIENT_CONFIG_FILE"]
    os.environ["OS_CLOUD"] = sandbox.env["OS_CLOUD"]
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def core(sandbox: t.Any, tmp_path: pathlib.Path, backend: Backend) -> Core:
    """The core on the test's backend (the sandbox unless the test runs on `both_backends`)."""
    sandbox.clear_faults()
    return Core(sandbox, tmp_path / "locks", backend=backend)


@dataclasses.dataclass
class PlaybookRun:
    result: dict[str, t.Any]
    output: str
    returncode: int


@dataclasses.dataclass
class Ansible:
    """Runs one module task with ansible-playbook, as a user would, and returns its registered result."""

    sandbox: t.Any
    workdir: pathlib.Path
    backend: Backend | None = None  # the cloud; None = the sandbox's

    def env(self) -> dict[str, str]:
        env = ansible_env(self.workdir, drop=("ANSIBLE_", "GITHUB_", "OS_"))
        values = self.backend.env if self.backend is not None else self.sandbox.env
        env.update({k: v for k, v in values.items() if k != "MONGODB_URI"})
        return env

    def run_fqcn(self, fqcn: str, args: dict[str, t.Any], **kwargs: t.Any) -> PlaybookRun:
        return self.run(fqcn, args, **kwargs)

    def run(
        self,
        module: str,
        args: dict[str, t.Any],
        *,
        check: bool = False,
        diff: bool = False,
        verbosity: int = 0,
        expect_failure: bool = False,
        log: pathlib.Path | None = None,
    ) -> PlaybookRun:
        locking = module in ("github_runner_pool", "openstack_runner_vm")
        task_args = {"lock_dir": str(self.workdir / "locks"), **args} if locking else args
        env = self.env() | ({"ANSIBLE_LOG_PATH": str(log)} if log is not None else {})
        result, output, returncode = run_task(
            self.workdir, module, task_args, env, check=check, diff=diff, verbosity=verbosity
        )
        if not expect_failure:
            assert not result.get("failed"), output
        return PlaybookRun(result, output, returncode)


@pytest.fixture
def ansible(sandbox: t.Any, tmp_path: pathlib.Path, backend: Backend) -> Ansible:
    """ansible-playbook on the test's backend (the sandbox unless the test runs on `both_backends`)."""
    sandbox.clear_faults()
    (tmp_path / "locks").mkdir()
    return Ansible(sandbox, tmp_path, backend=backend)
