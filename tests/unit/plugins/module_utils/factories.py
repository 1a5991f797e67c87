"""Small builders of the core's value types for the unit tests."""

from __future__ import annotations

import datetime
import typing as t
import zlib

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import PoolSpec, parse_pool
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import (
    GithubRunner,
    PoolTiming,
    RunnerState,
    RunnerView,
    Scope,
    ScopeKind,
    VmInfo,
)

UTC = datetime.UTC
NOW = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
#: The scope of `pool()`, which VMs record by default.
SCOPE = Scope(ScopeKind.REPOSITORY, "octo/hello")
TIMING = PoolTiming(bootstrap_timeout=900.0, offline_grace=300.0, registration_grace=120.0, max_lifetime=86400.0)


def ago(seconds: float) -> datetime.datetime:
    return NOW - datetime.timedelta(seconds=seconds)


def raw_pool(**overrides: t.Any) -> t.Dict[str, t.Any]:
    raw: t.Dict[str, t.Any] = {
        "name": "small",
        "repository": "octo/hello",
        "labels": ["self-hosted", "linux"],
        "flavor": "m1.small",
        "image": "ubuntu-22.04",
        "networks": ["runners"],
    }
    raw.update(overrides)
    return raw


def pool(**overrides: t.Any) -> PoolSpec:
    return parse_pool(raw_pool(**overrides))


def vm(
    name: str,
    status: str = "ACTIVE",
    age: float = 60.0,
    *,
    vm_id: t.Optional[str] = None,
    runner_id: t.Optional[int] = None,
    fault: t.Optional[str] = None,
    scope: t.Optional[Scope] = SCOPE,
) -> VmInfo:
    """A VM of pool ``small``; `scope` is its recorded scope (``None``: created before scopes were recorded)."""
    return VmInfo(
        id=vm_id or f"vm-{name}",
        name=name,
        status=status,
        created_at=ago(age),
        pool="small",
        runner_id=runner_id,
        fault=fault,
        scope=scope,
    )


def gh(
    name: str, *, online: bool = False, busy: bool = False, runner_id: int = 0, scope: t.Optional[Scope] = SCOPE
) -> GithubRunner:
    """A runner as the listing of `scope` (by default the pool's) shows it."""
    return GithubRunner(id=runner_id or zlib.crc32(name.encode()) + 1, name=name, online=online, busy=busy, scope=scope)


def view(
    name: str,
    state: RunnerState,
    *,
    age: float = 60.0,
    busy: t.Optional[bool] = None,
    with_vm: bool = True,
    with_runner: bool = True,
) -> RunnerView:
    """A view with a VM and a GitHub runner consistent with `state` (unless `busy` says otherwise)."""
    is_busy = state == RunnerState.BUSY if busy is None else busy
    online = state in (RunnerState.IDLE, RunnerState.BUSY)
    return RunnerView(
        name=name,
        state=state,
        vm=vm(name, age=age) if with_vm else None,
        github=gh(name, online=online, busy=is_busy) if with_runner else None,
        age=age,
        scope=SCOPE,
    )
