# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One runner VM by name: make it exist (JIT runner + VM) or not (GitHub first, then the VM).

Deletions are planned as the reconcile plans them (`plan_pool` with ``absent``): the
runner id falls back to the VM metadata's, GitHub is asked in the scope recorded on
the VM, a VM whose runner a listing missed is deleted only once GitHub says it is
gone, and a 422 (busy) keeps the VM unless forced.
"""

from __future__ import annotations

import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import PoolSpec
from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import ConfigError, RunnerError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._identity import owns_name
from ansible_collections.selfhosted.github_runners.plugins.module_utils._manager import (
    Clock,
    Guard,
    PlanExecutor,
    no_guard,
    utcnow,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import Plan, RunnerView
from ansible_collections.selfhosted.github_runners.plugins.module_utils._planner import plan_pool
from ansible_collections.selfhosted.github_runners.plugins.module_utils._ports import CloudPort, GithubPort
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reconcile import Snapshot
from ansible_collections.selfhosted.github_runners.plugins.module_utils._report import runner_info
from ansible_collections.selfhosted.github_runners.plugins.module_utils._state import derive_states


class RunnerBusyError(RunnerError):
    """The runner is running a job (or GitHub cannot confirm it is not) and force was not given."""


def ensure_runner_vm(
    github: GithubPort,
    cloud: CloudPort,
    controller_id: str,
    pool: PoolSpec,
    name: str,
    state: t.Literal["present", "absent"],
    force: bool = False,
    check_mode: bool = False,
    clock: Clock = utcnow,
    guard: Guard = no_guard,
) -> t.Dict[str, t.Any]:
    """Returns {changed, runner (before), diff}; raises RunnerBusyError for a busy runner without force."""
    prefix = f"{controller_id}-{pool.name}-"
    if not owns_name(controller_id, pool.name, name):
        raise ConfigError(
            "name", f"must be {prefix!r} followed by 12 lower-case hex digits, so that the pool's reconciles own it"
        )
    snapshot = Snapshot(github, cloud, controller_id, [pool])
    pool_vms = [vm for vm in snapshot.vms(pool.name) if vm.status != "DELETED"]
    vms = [vm for vm in pool_vms if vm.name == name]
    runners = [r for r in snapshot.runners(pool.name, pool.scope) if r.name == name]
    views = derive_states(vms, runners, clock(), pool.timing, scope=pool.scope)
    before = runner_info(views[0]) if views else None
    executor = PlanExecutor(github, cloud, controller_id, clock, guard)
    changed = False
    if state == "present":
        if not vms:
            if len(pool_vms) >= pool.max_runners:
                raise RunnerError(f"pool {pool.name} has {len(pool_vms)} VMs, its max_runners; {name} was not created")
            changed = True
            if not check_mode:
                if views:
                    # A JIT record without its VM: its config is gone; replace the record.
                    _carry_out(executor, _absent_plan(pool, name, views, force=False))
                executor.create_runner(pool, github.runner_group_id(pool.scope, pool.runner_group), name=name)
    elif views:
        plan = _absent_plan(pool, name, views, force)
        changed = True
        if not check_mode:
            _carry_out(executor, plan)
    after = None if state == "absent" else (before or {"name": name, "state": "booting"})
    return {"changed": changed, "runner": before, "diff": {"before": before or {}, "after": after or {}}}


def _absent_plan(pool: PoolSpec, name: str, views: t.Sequence[RunnerView], force: bool) -> Plan:
    """The reconcile's plan for emptying these views; RunnerBusyError for what it would defer."""
    plan = plan_pool(pool, views, mode="absent", force=force)
    if plan.deferred:
        if any(view.busy for view in views):
            raise RunnerBusyError(f"runner {name} is running a job; set force=true to delete it anyway")
        raise RunnerBusyError(
            f"runner {name}: its VM records no GitHub scope and {pool.scope} does not list its runner, which may be"
            " registered in a scope the pool had before; set force=true to delete it anyway"
        )
    return plan


def _carry_out(executor: PlanExecutor, plan: Plan) -> None:
    # One by one, the runners GitHub listed first: a duplicate VM's check then sees them gone.
    for deletion in sorted(plan.delete, key=lambda d: d.confirm_gone):
        outcome = executor.delete_runner(deletion)
        if outcome == "busy":
            raise RunnerBusyError(
                f"GitHub refused to delete runner {deletion.name}: it took a job; set force=true to delete it"
            )
        if outcome == "kept":
            raise RunnerError(
                f"runner {deletion.name} is still registered on GitHub although the runner listing did not show it;"
                " its VM was kept: run the task again"
            )
