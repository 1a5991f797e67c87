#!/usr/bin/python
# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: runner_job_queue_info
short_description: Show the depth of the reactive job queue per pool and status
version_added: 0.1.0
description:
  - Counts the job documents of the reactive job queue in MongoDB per pool and status (V(waiting), V(queued),
    V(claimed), V(spawned), V(dead), V(in_progress), V(completed)) and gives the age of the oldest job of each.
  - Reads only; it creates no collection or index, so it runs the same against a queue that does not exist yet
    (the result is then empty).
  - Costs one aggregation plus one indexed lookup per pool and status present.
options:
  pools:
    description:
      - Only these pools. All pools when not set.
    type: list
    elements: str
  statuses:
    description:
      - Only these statuses. All statuses when not set.
    type: list
    elements: str
    choices: [waiting, queued, claimed, spawned, dead, in_progress, completed]
extends_documentation_fragment:
  - selfhosted.github_runners.job_queue
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
- name: Show the job queue
  selfhosted.github_runners.runner_job_queue_info:
    mongodb_uri: "{{ vault_mongodb_uri }}"
  register: job_queue

- name: Fail when a queued job of pool small has waited for more than ten minutes
  ansible.builtin.assert:
    that: >-
      job_queue.depth
      | selectattr('pool', 'equalto', 'small')
      | selectattr('status', 'equalto', 'queued')
      | selectattr('oldest_age', 'gt', 600)
      | list | length == 0

- name: Count the dead jobs of two pools
  selfhosted.github_runners.runner_job_queue_info:
    pools: [small, large]
    statuses: [dead]
  register: dead_jobs
"""

RETURN = r"""
depth:
  description: One entry per pool and status that has jobs, sorted by pool and then in status order.
  returned: always
  type: list
  elements: dict
  contains:
    pool:
      description: The pool the jobs were routed to.
      type: str
      sample: small
    status:
      description: The job status.
      type: str
      sample: queued
    count:
      description: Number of jobs of the pool in this status.
      type: int
      sample: 3
    oldest_received_at:
      description: When the oldest of these jobs was received (UTC, ISO 8601), or null if unknown.
      type: str
      sample: "2026-03-01T12:00:00.000000Z"
    oldest_age:
      description: Seconds since the oldest of these jobs was received, or null if unknown.
      type: float
      sample: 42.5
totals:
  description: Number of jobs per status, over the pools shown.
  returned: always
  type: dict
  sample: {queued: 3, claimed: 1, spawned: 12}
"""

from ansible_collections.selfhosted.github_runners.plugins.module_utils._argspec import JOB_QUEUE
from ansible_collections.selfhosted.github_runners.plugins.module_utils._module import RunnersModule
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.job import STATUS_ORDER
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.mongo import MongoAccess
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import JobQueue

ARGUMENT_SPEC = {
    **JOB_QUEUE,
    "pools": {"type": "list", "elements": "str"},
    "statuses": {"type": "list", "elements": "str", "choices": [status.value for status in STATUS_ORDER]},
}


def main():
    module = RunnersModule(ARGUMENT_SPEC, github=False, openstack=False, controller=False, mongodb=True)

    def run():
        p = module.params
        mongo = MongoAccess(p["mongodb_uri"], server_timeout=p["mongodb_timeout"])
        try:
            queue = JobQueue(mongo, database=p["mongodb_database"], jobs_collection=p["jobs_collection"])
            depth = [entry.to_dict() for entry in queue.depth(pools=p["pools"], statuses=p["statuses"])]
        finally:
            mongo.close()
        totals = {}
        for entry in depth:
            totals[entry["status"]] = totals.get(entry["status"], 0) + entry["count"]
        return dict(changed=False, depth=depth, totals=totals)

    module.run(run)


if __name__ == "__main__":
    main()
