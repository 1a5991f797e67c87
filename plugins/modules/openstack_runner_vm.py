#!/usr/bin/python
# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: openstack_runner_vm
short_description: Create or delete one just-in-time GitHub Actions runner VM on OpenStack
version_added: 0.1.0
description:
  - V(present) registers a just-in-time runner with GitHub and creates its VM with the runner configuration in
    its user data; nothing happens when the VM exists.
  - V(absent) deletes the runner on GitHub first and the VM only after GitHub deleted it or no longer knows it,
    planned as M(selfhosted.github_runners.github_runner_pool) plans it. GitHub is asked in the scope recorded on the
    VM; when the runner listing does not show the runner, the runner ID in the VM metadata is checked with GitHub,
    and a runner GitHub still has keeps its VM (the task fails; run it again). A busy runner, or one GitHub refuses
    to delete because it took a job, is kept (the task fails) unless O(force=true).
  - A VM from an older version that records no scope, whose runner the pool's scope does not list, is kept
    (the task fails) unless O(force=true), as its runner may be registered in a scope the pool had before.
  - The name must be C(<controller_id>-<pool name>-) followed by 12 lower-case hex digits, so that the pool's
    reconciles own the runner.
  - The task holds the pool's lock, as a reconcile does, and creates no VM when the pool already has
    its C(max_runners).
options:
  name:
    description: Runner and VM name.
    type: str
    required: true
  pool:
    description:
      - The pool the runner belongs to; the same keys as an entry of the C(pools) option of
        M(selfhosted.github_runners.github_runner_pool).
    type: dict
    required: true
  state:
    description: Whether the runner should exist.
    type: str
    choices: [present, absent]
    default: present
  force:
    description: With V(absent), delete the runner even while it runs a job (the job fails).
    type: bool
    default: false
extends_documentation_fragment:
  - selfhosted.github_runners.pool
  - selfhosted.github_runners.pool.LOCKING
  - selfhosted.github_runners.github
  - selfhosted.github_runners.openstack
  - selfhosted.github_runners.attributes
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.ACTIONGROUPS
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
author:
  - selfhosted.github_runners contributors (@selfhosted)
"""

EXAMPLES = r"""
- name: Create a runner for a one-off debugging session
  selfhosted.github_runners.openstack_runner_vm:
    controller_id: ci1
    name: ci1-small-00000000d0b1
    pool:
      name: small
      repository: octo-org/app
      labels: [self-hosted, linux, small]
      flavor: m1.small
      image: ubuntu-24.04-runner
      networks: [runners-net]

- name: Delete it again, waiting for nothing but GitHub's answer
  selfhosted.github_runners.openstack_runner_vm:
    controller_id: ci1
    name: ci1-small-00000000d0b1
    pool: "{{ small_pool }}"
    state: absent
"""

RETURN = r"""
runner:
  description: The runner before the task (as M(selfhosted.github_runners.github_runner_pool_info) shows it), or null.
  returned: always
  type: dict
  sample:
    name: ci1-small-0123456789ab
    state: idle
    vm_status: ACTIVE
    github_status: online
    busy: false
    scope: repository:octo-org/app
"""

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import (
    parse_controller_id,
    parse_pool,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._lock import Heartbeat
from ansible_collections.selfhosted.github_runners.plugins.module_utils._module import RunnersModule
from ansible_collections.selfhosted.github_runners.plugins.module_utils._runner_vm import ensure_runner_vm

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    pool=dict(type="dict", required=True),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    force=dict(type="bool", default=False),
)


def main():
    module = RunnersModule(ARGUMENT_SPEC, locking=True)

    def run():
        params = module.params
        controller_id = parse_controller_id(params["controller_id"])
        pool = parse_pool(params["pool"], path="pool")
        # The pool's lock: no reconcile of the pool runs meanwhile, so max_runners holds.
        with module.locks()(f"{controller_id}-{pool.name}") as lock, Heartbeat([lock]):
            result = ensure_runner_vm(
                module.github(),
                module.cloud(),
                controller_id,
                pool,
                params["name"],
                params["state"],
                force=params["force"],
                check_mode=module.check_mode,
                guard=lambda call: lock.ensure_held(),
            )
        diff = result.pop("diff")
        if module.module._diff:
            result["diff"] = diff
        return result

    module.run(run)


if __name__ == "__main__":
    main()
