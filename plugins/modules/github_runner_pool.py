#!/usr/bin/python
# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: github_runner_pool
short_description: Keep pools of ephemeral GitHub Actions runners on OpenStack at their size
version_added: 0.1.0
description:
  - Reconciles each pool once. It lists the pool's VMs (one server listing) and GitHub runners (one listing per scope),
    derives every runner's state, deletes failed, lost, finished, orphaned and expired runners, and creates
    just-in-time runners until the pool has O(pools[].min_idle) idle runners, never more than O(pools[].max_runners).
  - A busy runner is never deleted unless O(force=true); GitHub is asked first and a VM is deleted only after GitHub
    deleted or no longer knows its runner.
  - A VM is the controller's only when it carries the C(ghr-controller) and C(ghr-pool) tags and its name is
    C(<controller_id>-<pool>-) followed by 12 hex digits; other VMs are never touched, whatever their tags.
  - Each VM records the GitHub scope its runner was registered in, and every GitHub request about that runner goes
    to that scope. A pool moved to another scope (for example from O(pools[].repository) to O(pools[].organization))
    keeps its runners of the old scope until they end; the result lists them in RV(pools[].scope_changed).
    Use O(state=flushed) to replace the idle ones now.
  - VMs created by versions that did not record the scope are taken to be in the pool's current scope, and are not
    deleted because that scope no longer lists their runner until they reach O(pools[].max_lifetime)
    (O(force=true) deletes them).
  - A pool whose labels, flavor, image, networks, security groups, key, or user data change replaces its idle runners
    of the former settings (reason C(outdated)), at most O(pools[].max_replace_per_run) a run; busy ones end with their
    job. They are listed in RV(pools[].outdated) and marked C(outdated) in the diff.
  - A pool creates at most O(pools[].max_create_per_run) runners a run, and never more than O(pools[].max_runners)
    (at most V(1000)); the result warns when either cuts the pool's size short.
  - VMs of the controller whose pool is not in O(pools) are reported in RV(unmanaged) with a warning, and left
    alone unless O(prune_unlisted_pools=true).
  - Before a pool's first runner of a run is registered on GitHub, its flavor, image, networks and security groups
    are looked up (once per name and run; an image, network or security group given as an ID is passed to Nova as it
    is). A name the cloud does not know fails that pool with an error that names the field (such as C(pools[0].image))
    and costs no runner registration; the other pools go on.
  - A pool whose creations fail (a quota, HTTP 5xx on create, VMs that go to ERROR at boot such as
    C(No valid host was found.)) backs off, see O(pools[].creation_backoff). While it backs off, the run still deletes
    the pool's failed and finished runners but creates none, says so in RV(pools[].plan.held) and
    RV(pools[].backoff), and warns. The backoff is kept with the pool's lock state (O(lock_dir) or O(mongodb_uri)), so
    the next run, on any host, goes on from it.
  - Each pool fails on its own. When one scope's runner listing fails (a renamed repository, an organization the
    token cannot see, HTTP 403 or 404) or one pool's reconcile fails, the other pools are reconciled, the failed pool's
    result carries the error, and the task fails at the end naming the failed pools, with every pool's result.
    Only a failed server listing, which every pool needs, stops the whole run.
  - On SIGINT (ansible-playbook interrupted) or SIGTERM (an AWX job cancelled) the module starts no new creation or
    deletion, completes those under way (a runner registered on GitHub gets its VM, a runner deleted on GitHub loses
    its VM, or a failed create deletes its registration), saves every pool's state, releases the locks, and fails
    naming per pool what was created, deleted and left (RV(pools[].stopped), RV(pools[].left)). Further signals do
    not cut this short. The next run goes on from there. A run still waiting for a pool lock stops waiting and fails,
    having changed nothing.
  - Run it on a schedule (cron, systemd timer, AWX) with the C(selfhosted.github_runners.reconcile) playbook.
options:
  state:
    description:
      - V(present) keeps the pools at their size.
      - V(absent) deletes idle runners now and busy ones once their job has finished (a later run); with O(force), all.
      - V(flushed) replaces idle runners (for example after an image change); with O(force), busy ones too.
    type: str
    choices: [present, absent, flushed]
    default: present
  force:
    description:
      - Delete busy runners too (their jobs fail). Only with O(state=absent) or O(state=flushed).
    type: bool
    default: false
  count_queued_jobs:
    description:
      - Also size each pool for the jobs queued on GitHub that its labels can take (each job counts for the first
        such pool in O(pools)), so that jobs are served without webhooks.
      - Costs requests on every run, for each scope, two per repository (for organizations, plus the repository listing) and one
        per queued or running workflow run. Leave it off when the reactive path serves queued jobs.
      - Only with O(state=present).
      - At most O(count_queued_jobs_max_requests) requests a run, and none while GitHub's remaining budget is
        below O(count_queued_jobs_rate_limit_floor); the result's RV(queued_jobs) says how many repositories
        were not looked at. Organizations' repositories are looked at most recently pushed first.
    type: bool
    default: false
  prune_unlisted_pools:
    description:
      - Empty the pools that have VMs of this O(controller_id) but are no longer in O(pools), as O(state=absent)
        would. Idle runners are deleted (GitHub first, in the scope recorded on each VM), busy ones are deferred to a
        later run (with O(force), deleted too). Their results follow the listed pools in RV(pools), with
        RV(pools[].unlisted=true).
      - VMs of such pools that record no scope (created by older versions) are left alone; list their pool with
        O(state=absent) instead.
      - Only when one configuration lists every pool of the O(controller_id); a playbook that does not list another
        playbook's pools would empty them. A pool whose lock another reconcile holds is skipped, with a warning.
    type: bool
    default: false
  count_queued_jobs_max_requests:
    description:
      - Most GitHub requests O(count_queued_jobs) may spend in one run, over all scopes.
      - With one reconcile a minute, the default spends at most 6000 of the hourly budget (5000 for a token,
        at least 5000 for an App installation); O(count_queued_jobs_rate_limit_floor) stops it earlier.
    type: int
    default: 100
  count_queued_jobs_rate_limit_floor:
    description:
      - O(count_queued_jobs) makes no request while GitHub's remaining rate-limit budget is below this, so that
        listings, creations and clean-ups keep theirs. The runner listing always runs.
    type: int
    default: 1000
  job_queue:
    description:
      - Also size each pool for the jobs of the MongoDB job queue of the reactive path (the queue that the webhook
        router fills and the reactive consumer serves) that no consumer served, that is jobs of the pool in status C(queued),
        or C(claimed) under an expired lease, received more than O(job_queue_grace) ago. A pool's desired size is
        then its busy runners plus the larger of O(pools[].min_idle) and its queued jobs, at most
        O(pools[].max_runners).
      - The scheduled reconcile so serves the jobs of a consumer that stopped or fails, and the jobs that reached the
        queue while no consumer ran.
      - With O(count_queued_jobs) too, each pool is sized for the larger of the two counts, not their sum.
      - Needs O(mongodb_uri); the queue is O(jobs_collection) in O(mongodb_database), the database of the pool
        leases. Its reads and writes each end after O(mongodb_timeout) seconds.
      - When MongoDB fails while the queue is read, the pools are sized without it and a warning says so; the task
        does not fail for it.
      - Only with O(state=present). Check mode reads the queue too.
    type: bool
    default: false
  job_queue_grace:
    description:
      - With O(job_queue), how long a queued job is left to the reactive consumer before the reconcile counts it.
        Younger jobs are the consumer's to serve; counting them too would start a second runner for each.
      - Keep it above the consumer's time from a job's arrival to its spawn, with room for retries.
      - Seconds, or a string such as C(90s) or C(2m).
    type: raw
    default: 1m
  job_queue_backfill:
    description:
      - With O(job_queue), also put the jobs queued on GitHub into the queue, for webhooks GitHub never delivered.
        Each job goes to the first pool in O(pools) of its scope whose labels can take it; jobs no pool can take are
        not enqueued. A job already in the queue is left as it is (an idempotent upsert; a status only moves
        forward).
      - Finds the jobs as O(count_queued_jobs) does, within O(count_queued_jobs_max_requests) and
        O(count_queued_jobs_rate_limit_floor), also when O(count_queued_jobs=false); without it, those jobs do not
        size the pools in this run. A backfilled job is received when it is enqueued, so the consumer has its
        O(job_queue_grace) first.
      - Not in check mode.
    type: bool
    default: false
  wait:
    description:
      - After reconciling, wait until every pool has at least O(pools[].min_idle) idle runners.
      - Fails at once instead when a pool that needs runners backs off its creations (see O(pools[].creation_backoff)),
        or needs more than O(pools[].max_create_per_run) allows in one run.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait with O(wait).
    type: int
    default: 600
extends_documentation_fragment:
  - selfhosted.github_runners.pool
  - selfhosted.github_runners.pool.POOLS
  - selfhosted.github_runners.pool.LOCKING
  - selfhosted.github_runners.job_queue
  - selfhosted.github_runners.github
  - selfhosted.github_runners.openstack
  - selfhosted.github_runners.attributes
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.ACTIONGROUPS
attributes:
  check_mode:
    support: full
    details: Returns the plan the real run would carry out, its creation backoff included, makes no mutating API call,
      saves no pool state and backfills no job (O(job_queue_backfill)); it reads the job queue (O(job_queue)).
  diff_mode:
    support: full
author:
  - selfhosted.github_runners contributors (@selfhosted)
"""

EXAMPLES = r"""
- name: Keep two idle runners for the repository
  selfhosted.github_runners.github_runner_pool:
    controller_id: ci1
    cloud: mycloud
    github_token: "{{ vault_github_token }}"
    pools:
      - name: small
        repository: octo-org/app
        labels: [self-hosted, linux, small]
        min_idle: 2
        max_runners: 10
        flavor: m1.small
        image: ubuntu-24.04-runner
        networks: [runners-net]
        security_groups: [runners-no-ingress]

- name: Reconcile organization pools as a GitHub App, with a MongoDB lock shared by several hosts
  selfhosted.github_runners.github_runner_pool:
    controller_id: ci1
    github_app_id: "123456"
    github_app_private_key_path: /etc/github-runners/app.pem
    github_app_installation_id: 987654
    mongodb_uri: "{{ vault_mongodb_uri }}"
    pools: "{{ runner_pools }}"

- name: On a cloud that often runs out of capacity, wait longer before creating again after failures
  selfhosted.github_runners.github_runner_pool:
    controller_id: ci1
    cloud: mycloud
    pools:
      - name: gpu
        organization: octo-org
        labels: [self-hosted, linux, gpu]
        min_idle: 1
        flavor: g1.large
        image: ubuntu-24.04-runner
        networks: [runners-net]
        creation_backoff: 5m
        creation_backoff_max: 2h
  register: reconciled

- name: Say when the GPU pool may create again
  ansible.builtin.debug:
    msg: "{{ reconciled.pools[0].backoff.last_fault }}: no new runner before {{ reconciled.pools[0].backoff.backoff_until }}"
  when: reconciled.pools[0].backoff.active

- name: On a cloud whose Image and Network APIs the controller cannot reach, give ids and let Nova pick the network
  selfhosted.github_runners.github_runner_pool:
    controller_id: ci1
    cloud: mycloud
    pools:
      - name: edge
        repository: octo-org/app
        labels: [self-hosted, linux]
        min_idle: 1
        flavor: m1.small
        image: 6f3b0c1e-2d4a-4f5b-8c7d-9e0a1b2c3d4e
        networks: auto

- name: Replace every idle runner after an image update
  selfhosted.github_runners.github_runner_pool:
    controller_id: ci1
    pools: "{{ runner_pools }}"
    state: flushed

- name: Remove a pool, letting running jobs finish
  selfhosted.github_runners.github_runner_pool:
    controller_id: ci1
    pools: "{{ runner_pools }}"
    state: absent

- name: Beside the reactive consumer, serve the queued jobs it left for over two minutes, and queue lost webhooks
  selfhosted.github_runners.github_runner_pool:
    controller_id: ci1
    mongodb_uri: "{{ vault_mongodb_uri }}"
    job_queue: true
    job_queue_grace: 2m
    job_queue_backfill: true
    pools: "{{ runner_pools }}"
  register: reconciled

- name: Say how many queued jobs each pool was sized for
  ansible.builtin.debug:
    msg: "{{ item.key }}: {{ item.value.sized_for }} queued jobs ({{ item.value.queued }} unserved in the queue)"
  loop: "{{ reconciled.job_queue.pools | dict2items }}"

- name: Keep the listed pools at size and empty those removed from the list
  selfhosted.github_runners.github_runner_pool:
    controller_id: ci1
    pools: "{{ runner_pools }}"
    prune_unlisted_pools: true
"""

RETURN = r"""
pools:
  description:
    - One entry per pool, in the order given; then, with O(prune_unlisted_pools), one per pool that is not listed but
      has VMs.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The pool name.
      type: str
      sample: small
    unlisted:
      description: Whether the pool is not in O(pools) (emptied because of O(prune_unlisted_pools)).
      type: bool
    changed:
      description: Whether this pool's runners were created or deleted (in check mode, would be).
      type: bool
    failed:
      description: Whether this pool had an error (see RV(pools[].errors)); the task then fails naming the pool.
      type: bool
    reconciled:
      description:
        - False when the pool was not reconciled at all because a listing it needs failed (its repository does not
          exist, the token cannot see its organization); nothing was changed for it and RV(pools[].errors) says why.
      type: bool
    summary:
      description: One line for people with the runners by state and what was created and deleted (in check mode, what
        would be).
      type: str
      sample: "small: idle 2, busy 1; created 1, deleted 2 (finished 2)"
    states:
      description: Runners per derived state before the run (booting, idle, busy, failed, lost, finished, orphan, expired).
      type: dict
      sample: {booting: 0, idle: 2, busy: 1, failed: 0, lost: 0, finished: 1, orphan: 0, expired: 0}
    plan:
      description: What the run decided; in check mode, what it would do.
      type: dict
      contains:
        desired:
          description: The pool's desired size (busy plus idle target, at most max_runners).
          type: int
        alive:
          description: Booting, idle and busy runners that stay.
          type: int
        create:
          description: Runners to create.
          type: int
        delete:
          description: Runners to delete, each with its reason and whether it is busy (forced).
          type: list
          elements: dict
        deferred:
          description:
            - Runners left for a later run, busy ones (absent or flushed without force), and VMs whose runner
              GitHub cannot confirm gone yet (VMs from older versions that record no scope, or without a runner ID
              in their metadata, until max_lifetime).
          type: list
          elements: str
        held:
          description: Runners not created because the pool's creations back off (see RV(pools[].backoff)) or GitHub's
            rate limit holds the pool back (see RV(pools[].github_not_before)).
          type: int
        limited:
          description: Runners not created in this run because of O(pools[].max_create_per_run); later runs create them.
          type: int
        outdated:
          description: Runners of the pool created from its former settings (busy ones included), see
            RV(pools[].outdated).
          type: int
    backoff:
      description: The pool's creation backoff after this run (in check mode, as the run would leave it).
      type: dict
      contains:
        active:
          description: Whether creations wait; the run created none while it did.
          type: bool
        backoff_until:
          description: When the pool may create again (UTC); null when no creation failed since the last success.
          type: str
          sample: "2026-01-01T12:03:30Z"
        consecutive_failures:
          description: Failed creations since a runner of the pool last came online.
          type: int
        last_fault:
          description: What the cloud said about the last failed creation (Nova's fault or the create call's error).
          type: str
          sample: "No valid host was found."
        fault_kind:
          description: V(quota) (also when reached through ERROR), V(no_valid_host), or V(error); null without failures.
          type: str
          sample: no_valid_host
    created:
      description: Names of the runners created.
      type: list
      elements: str
    deleted:
      description: Names of the runners deleted, by reason (failed, lost, finished, orphan, expired, scale_down, outdated,
        flush, absent).
      type: dict
      sample: {finished: [ci1-small-0123456789ab]}
    skipped_busy:
      description: Runners GitHub refused to delete because they took a job meanwhile (their VMs are kept).
      type: list
      elements: str
    scope_changed:
      description:
        - VMs whose runner is registered in another GitHub scope than the pool's (the pool moved to another scope).
          They are reconciled in their own scope until they end.
      type: list
      elements: str
      sample: [ci1-small-0123456789ab]
    outdated:
      description:
        - Runners whose VM records a hash of other pool settings than the current ones (see
          O(pools[].max_replace_per_run)), as listed before the run. Idle ones are replaced; busy ones end with their job.
        - VMs that record no hash (created by older versions) are not listed.
      type: list
      elements: str
      sample: [ci1-small-0123456789ab]
    errors:
      description: Errors of this pool's creations and deletions, and names of the pool the cloud could not resolve
        (with the field, for example C(pools[0].image)).
      type: list
      elements: str
    duration:
      description: Seconds this pool's reconcile took.
      type: float
    stopped:
      description:
        - When a stop was requested (SIGINT, SIGTERM) before the pool's plan was carried out, why (for example
          C(stopped by SIGINT)); the pool then counts as failed. Null otherwise.
      type: str
      sample: stopped by SIGINT
    left:
      description: What the pool's plan wanted that this run did not do (after a stop request, a failure, or GitHub
        refusing a deletion).
      type: dict
      contains:
        create:
          description: Runners planned but not created.
          type: int
        delete:
          description: Names of the runners planned for deletion and neither deleted nor found busy or kept.
          type: list
          elements: str
      sample: {create: 4, delete: []}
    github_not_before:
      description:
        - When GitHub rate-limited an earlier request and asked to wait, the time (UTC) before which this pool
          registers and deletes no GitHub runner; VMs alone are still deleted. Null otherwise.
        - Kept in the pool's state, so later runs wait too.
      type: str
      sample: "2026-01-01T12:05:00Z"
unmanaged:
  description:
    - VMs of this O(controller_id) per pool that is not in O(pools) (VMs being deleted not counted). Each such pool is
      also reported as a warning, unless O(prune_unlisted_pools) emptied it.
  returned: always
  type: dict
  sample: {old-pool: 3}
api_calls:
  description:
    - API requests this run made, per service (C(github), C(openstack)).
    - C(openstack_list_bytes) is the size in bytes of the server listings the run received. Listings made with
      admin credentials carry every server's user data (Nova's C(OS-EXT-SRV-ATTR) fields), several KiB per runner;
      the collection never returns or logs them.
  returned: always
  type: dict
  sample: {github: 1, openstack: 1, openstack_list_bytes: 4210}
github_rate:
  description: GitHub's rate limits as this run saw them.
  returned: always
  type: dict
  contains:
    remaining:
      description: The remaining request budget of the last response (null before one).
      type: int
    write_wait:
      description: Seconds the mutating requests waited on the write token bucket (O(github_write_burst)).
      type: float
    not_before:
      description: When GitHub asked for no change before a time still to come, that time (UTC); else null.
      type: str
  sample: {remaining: 4987, write_wait: 0.0, not_before: null}
queued_jobs:
  description: What O(count_queued_jobs) (or O(job_queue_backfill)) found on GitHub and cost.
  returned: when O(count_queued_jobs=true) or O(job_queue_backfill=true), and O(state=present)
  type: dict
  contains:
    found:
      description: Queued jobs found (before matching them with the pools' labels).
      type: int
    requests:
      description: GitHub requests spent on them.
      type: int
    repositories:
      description: Repositories looked at in full.
      type: int
    skipped_repositories:
      description: Repositories not (fully) looked at; null when not even the organization's repositories could be listed.
      type: int
    stopped_by:
      description: Why the count stopped short (V(max_requests), V(rate_limit_floor), V(rate_limited)), or null.
      type: str
  sample: {found: 3, requests: 7, repositories: 3, skipped_repositories: 0, stopped_by: null}
job_queue:
  description: What the job queue meant for the pools (O(job_queue)).
  returned: when O(job_queue=true) and O(state=present)
  type: dict
  contains:
    counted:
      description: Whether the queue was read; false when MongoDB failed (the pools were sized without it).
      type: bool
    pools:
      description: Per pool name, the queue's count and the backfill.
      type: dict
      contains:
        queued:
          description: Jobs of the pool in the queue that no consumer served, older than O(job_queue_grace); null when
            the queue could not be read.
          type: int
        sized_for:
          description: The queued jobs the pool was sized for, the larger of RV(job_queue.pools.queued) and the pool's
            jobs that O(count_queued_jobs) found.
          type: int
        backfill:
          description:
            - With O(job_queue_backfill), the pool's jobs found on GitHub by what their upsert did (V(inserted) new,
              V(updated) a stored job moved forward, V(unchanged) already there); null without a backfill, in check
              mode, and when MongoDB failed.
          type: dict
  sample: {counted: true, pools: {small: {queued: 2, sized_for: 3, backfill: {inserted: 1, updated: 0, unchanged: 2}}}}
idle:
  description: Idle runners per pool when O(wait) finished.
  returned: when O(wait=true)
  type: dict
  sample: {small: 2}
"""

from ansible_collections.selfhosted.github_runners.plugins.module_utils._argspec import JOB_QUEUE, POOLS
from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import (
    parse_controller_id,
    parse_pools,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import ConfigError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._interrupt import (
    Stopped,
    StopRequest,
    stop_on_signals,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._module import RunnersModule
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reconcile import (
    ReconcileOptions,
    Reconciler,
    wait_for_idle,
)

ARGUMENT_SPEC = dict(
    POOLS,
    state=dict(type="str", default="present", choices=["present", "absent", "flushed"]),
    force=dict(type="bool", default=False),
    count_queued_jobs=dict(type="bool", default=False),
    prune_unlisted_pools=dict(type="bool", default=False),
    count_queued_jobs_max_requests=dict(type="int", default=100),
    count_queued_jobs_rate_limit_floor=dict(type="int", default=1000),
    job_queue=dict(type="bool", default=False),
    job_queue_grace=dict(type="raw", default="1m"),
    job_queue_backfill=dict(type="bool", default=False),
    jobs_collection=JOB_QUEUE["jobs_collection"],
    mongodb_timeout=JOB_QUEUE["mongodb_timeout"],
    wait=dict(type="bool", default=False),
    wait_timeout=dict(type="int", default=600),
)


def main():
    module = RunnersModule(ARGUMENT_SPEC, locking=True)
    # SIGINT (ansible-playbook interrupted) or SIGTERM (an AWX job cancelled): see _interrupt.
    stop = StopRequest(on_request=module.tell)

    def run():
        params = module.params
        pools = parse_pools(params["pools"])
        controller_id = parse_controller_id(params["controller_id"])
        for name in ("count_queued_jobs_max_requests", "count_queued_jobs_rate_limit_floor"):
            if params[name] < 0:
                raise ConfigError(name, f"must not be negative, got {params[name]}")
        reconciler = Reconciler(
            module.github(), module.cloud(), module.locks(check=stop.check), stop=stop, backlog=module.backlog()
        )
        options = ReconcileOptions(
            controller_id,
            params["state"],
            params["force"],
            module.check_mode,
            count_queued_jobs=params["count_queued_jobs"],
            prune_unlisted_pools=params["prune_unlisted_pools"],
            queued_jobs_max_requests=params["count_queued_jobs_max_requests"],
            queued_jobs_rate_limit_floor=params["count_queued_jobs_rate_limit_floor"],
        )
        report = reconciler.run(pools, options)
        result = dict(changed=report.changed, **report.as_dict())
        if report.warnings:
            result["warnings"] = report.warnings
        if module.module._diff:
            result["diff"] = report.diff()
        failure = report.failure_message()
        if failure is not None:  # every pool's result is returned with it
            result.update(failed=True, msg=failure)
        elif params["wait"] and not module.check_mode and params["state"] == "present":
            # Their runners cannot come before the backoff ends, or before later runs create them.
            if report.held or report.limited:
                result.update(failed=True, msg="not waiting for idle runners: " + "; ".join(report.warnings))
            else:
                try:
                    result["idle"] = wait_for_idle(
                        reconciler, pools, controller_id, params["wait_timeout"], sleep=stop.sleep
                    )
                except Stopped as exc:
                    result.update(failed=True, msg=f"{exc} while waiting for idle runners (the reconcile had ended)")
        return result

    with stop_on_signals(stop):
        module.run(run)


if __name__ == "__main__":
    main()
