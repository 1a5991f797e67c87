#!/usr/bin/python
# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: github_runner_pool_info
short_description: Show the runners of GitHub runner pools on OpenStack, with their derived states
version_added: 0.1.0
description:
  - Joins each pool's VMs and GitHub runners and returns every runner with its VM status, GitHub status,
    derived state and age. Changes nothing.
  - Costs one server listing and one runner listing per GitHub scope (the pools' scopes and the scopes recorded on
    their VMs).
  - VMs of the controller whose pool is not in O(pools) are counted in RV(unmanaged), with a warning.
extends_documentation_fragment:
  - selfhosted.github_runners.pool
  - selfhosted.github_runners.pool.POOLS
  - selfhosted.github_runners.github
  - selfhosted.github_runners.openstack
  - selfhosted.github_runners.attributes
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.ACTIONGROUPS
attributes:
  check_mode:
    support: full
    details: Changes nothing, so it runs the same in check mode.
  diff_mode:
    support: N/A
author:
  - selfhosted.github_runners contributors (@selfhosted)
"""

EXAMPLES = r"""
- name: Show the runners of the pools
  selfhosted.github_runners.github_runner_pool_info:
    controller_id: ci1
    pools: "{{ runner_pools }}"
  register: runners

- name: Print the idle runners of the first pool
  ansible.builtin.debug:
    msg: "{{ runners.pools[0].runners | selectattr('state', 'equalto', 'idle') | map(attribute='name') }}"
"""

RETURN = r"""
pools:
  description: One entry per pool, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The pool name.
      type: str
    summary:
      description: The pool's runners per state, for people.
      type: str
      sample: "small: idle 2, busy 1"
    error:
      description:
        - Why the pool could not be looked at (its runner listing failed, for example a repository that does not
          exist or that the token has no admin rights on), naming the pool; null otherwise.
        - The module then fails naming such pools, and still returns the views of the others.
      type: str
    states:
      description: Runners per derived state.
      type: dict
      sample: {booting: 0, idle: 2, busy: 1, failed: 0, lost: 0, finished: 0, orphan: 0, expired: 0}
    runners:
      description: The pool's runners.
      type: list
      elements: dict
      contains:
        name:
          description: Runner name, the same as the VM name.
          type: str
        state:
          description: Derived state (booting, idle, busy, failed, lost, finished, orphan, expired).
          type: str
        age:
          description: Seconds since the VM was created.
          type: float
        vm_id:
          description: Server ID, or null without a VM.
          type: str
        vm_status:
          description: Nova status (BUILD, ACTIVE, SHUTOFF, ERROR, ...), or null without a VM.
          type: str
        vm_fault:
          description: Nova's fault message for a VM in ERROR.
          type: str
        runner_id:
          description: GitHub runner ID, or null when GitHub does not list the runner.
          type: int
        scope:
          description:
            - The GitHub scope the runner is registered in, as C(repository:owner/repo), C(organization:org) or
              C(enterprise:slug). VMs from older versions, which record none, show the pool's scope.
          type: str
          sample: repository:octo-org/app
        github_status:
          description: V(online) or V(offline), or null when GitHub does not list the runner.
          type: str
        busy:
          description: Whether GitHub says the runner is running a job.
          type: bool
        labels:
          description: The runner's labels as GitHub lists them, or null when GitHub does not list the runner.
          type: list
          elements: str
          sample: [self-hosted, linux, small]
        created_at:
          description: When the VM was created (UTC, its C(ghr_created_at) metadata), or null without a VM.
          type: str
          sample: "2026-01-01T12:00:00Z"
        spec:
          description: The hash of the pool settings the VM was created from (C(ghr_spec) metadata); null for VMs
            created by versions that did not record it, and without a VM.
          type: str
          sample: 18852bb289d4e456
        outdated:
          description: Whether the VM was created from other pool settings than the current ones (false when unknown).
          type: bool
        flavor:
          description: The flavor the VM was created with, by name as Nova shows it; null without a VM.
          type: str
          sample: m1.small
        image:
          description: The ID of the image the VM was created from; null without a VM and for VMs booted from a volume.
          type: str
          sample: 5f2c7a1e-8c1b-4c55-9d8e-2f0f5a3d9c11
        job_id:
          description:
            - The GitHub job the runner was created for (C(ghr_job_id) metadata), for runners created for one queued
              job; null for the others. GitHub's runner listing does not say which job a runner runs.
          type: int
unmanaged:
  description: VMs of this O(controller_id) per pool that is not in O(pools) (VMs being deleted not counted).
  returned: always
  type: dict
  sample: {old-pool: 3}
"""

from ansible_collections.selfhosted.github_runners.plugins.module_utils._argspec import POOLS
from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import (
    parse_controller_id,
    parse_pools,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._module import RunnersModule
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reconcile import Reconciler
from ansible_collections.selfhosted.github_runners.plugins.module_utils._report import pool_info, unmanaged_warnings


def main():
    module = RunnersModule(POOLS)

    def run():
        pools = parse_pools(module.params["pools"])
        controller_id = parse_controller_id(module.params["controller_id"])
        reconciler = Reconciler(module.github(), module.cloud(), locks=None)
        inspection = reconciler.inspect(pools, controller_id)
        result = dict(
            changed=False,
            pools=[pool_info(pool.name, inspection.views[pool.name]) for pool in pools],
            unmanaged=inspection.unmanaged,
        )
        for info in result["pools"]:
            error = inspection.errors.get(info["name"])
            info["error"] = error
        warnings = unmanaged_warnings(inspection.unmanaged)
        if warnings:
            result["warnings"] = warnings
        if inspection.errors:  # the other pools' views are returned with it
            failed = ", ".join(inspection.errors)
            result.update(failed=True, msg=f"pools not looked at ({failed}): " + "; ".join(inspection.errors.values()))
        return result

    module.run(run)


if __name__ == "__main__":
    main()
