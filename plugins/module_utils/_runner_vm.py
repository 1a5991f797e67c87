# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One runner VM by name: make it exist (JIT runner + VM) or not (GitHub first, then the VM)."""

from __future__ import annotations

import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import PoolSpec
from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import ConfigError, RunnerError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._identity import owns_name
from ansible_collections.selfhosted.github_runners.plugins.module_utils._manager import Clock, PlanExecutor, utcnow
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import DeleteReason, Deletion
from ansible_collections.selfhosted.github_runners.plugins.module_utils._ports import CloudPort, GithubPort
from ansible_collections.selfhosted.github_runners.plugins.module_utils._report import runner_info
from ansible_collections.selfhosted.github_runners.plugins.module_utils._state import derive_states


class RunnerBusyError(RunnerError):
    """The runner is running a job and force was not given."""


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
) -> t.Dict[str, t.Any]:
    """Returns {changed, runner (before), diff}; raises RunnerBusyError for a busy runner without force."""
    prefix = f"{controller_id}-{pool.name}-"
    if not owns_name(controller_id, pool.name, name):
        raise ConfigError(
            "name", f"must be {prefix!r} followed by 12 lower-case hex digits, so that the pool's reconciles own it"
        )
    pool_vms = [vm for vm in cloud.list_servers(controller_id, pool.name) if vm.status != "DELETED"]
    vms = [vm for vm in pool_vms if vm.name == name]
    runners = [r for r in github.list_runners(pool.scope) if r.name == name]
    views = derive_states(vms, runners, clock(), pool.timing)
    before = runner_info(views[0]) if views else None
    executor = PlanExecutor(github, cloud, controller_id, clock)
    changed = False
    if state == "present":
        if not vms:
            if len(pool_vms) >= pool.max_runners:
                raise RunnerError(f"pool {pool.name} has {len(pool_vms)} VMs, its max_runners; {name} was not created")
            changed = True
            if not check_mode:
                if runners:
                    # A JIT record without its VM: its config is gone; replace the record.
                    _delete(executor, pool, name, None, runners[0].id, runners[0].busy, force=False)
                executor.create_runner(pool, github.runner_group_id(pool.scope, pool.runner_group), name=name)
    elif vms or runners:
        busy = any(r.busy for r in runners)
        if busy and not force:
            raise RunnerBusyError(f"runner {name} is running a job; set force=true to delete it anyway")
        changed = True
        if not check_mode:
            runner_id = runners[0].id if runners else None
            # Every VM of that name goes (a duplicate left by an interrupted create, too).
            vm_ids: t.List[t.Optional[str]] = [vm.id for vm in vms] or [None]
            for vm_id in vm_ids:
                _delete(executor, pool, name, vm_id, runner_id, busy, force)
                runner_id = None  # GitHub answered for the first; the rest are VMs only
    after = None if state == "absent" else (before or {"name": name, "state": "booting"})
    return {"changed": changed, "runner": before, "diff": {"before": before or {}, "after": after or {}}}


def _delete(
    executor: PlanExecutor,
    pool: PoolSpec,
    name: str,
    vm_id: t.Optional[str],
    runner_id: t.Optional[int],
    busy: bool,
    force: bool,
) -> None:
    deletion = Deletion(name, DeleteReason.ABSENT, vm_id, runner_id, busy=busy and force)
    if executor.delete_runner(pool, deletion) == "busy":
        raise RunnerBusyError(f"GitHub refused to delete runner {name}: it took a job; set force=true to delete it")
