# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  controller_id:
    description:
      - Short, stable name of this installation (lower-case letters and digits, at most 20 characters; no C(-),
        because runner names are C(<controller_id>-<pool>-<12 hex>)).
      - Runner and VM names start with it, and VMs carry it in the C(ghr-controller) server tag;
        nothing without it is ever touched.
    type: str
    required: true
"""

    POOLS = r"""
options:
  pools:
    description:
      - The runner pools. Each is reconciled on its own, under its own lock; listings are shared.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Pool name (lower-case letters, digits and C(-), at most 20 characters), unique per controller.
        type: str
        required: true
      repository:
        description: Register the runners with this repository (C(owner/repo)). Exactly one of O(pools[].repository),
          O(pools[].organization) and O(pools[].enterprise).
        type: str
      organization:
        description: Register the runners with this organization.
        type: str
      enterprise:
        description: Register the runners with this enterprise (slug).
        type: str
      labels:
        description:
          - Labels of the runners; jobs whose C(runs-on) labels are all among them run here.
          - Each label is a string. Numbers and booleans (quote them), and lists or mappings, also written as text
            (such as C("['self-hosted']"), what a Jinja expression rendering a list into a string gives), are refused
            with the label's field named.
        type: list
        elements: raw
        required: true
      runner_group:
        description: Name of the runner group (organizations and enterprises). The default group when not set.
        type: str
      min_idle:
        description:
          - Idle runners to keep ready for jobs.
          - A value above O(pools[].max_runners) is capped by it, with a warning in the result.
        type: int
        default: 0
      max_runners:
        description: Most runners (VMs) the pool may have at once, busy ones included; at most V(1000).
        type: int
        default: 10
      flavor:
        description: Nova flavor name or ID of the runner VMs (looked up in Nova once per run).
        type: str
        required: true
      image:
        description:
          - Image of the runner VMs.
          - An image ID (a UUID) goes to Nova as it is, without a look-up, so the cloud needs no Image API (Glance)
            endpoint that the collection can reach. A name is looked up in the Image API once per run.
        type: str
        required: true
      networks:
        description:
          - Networks of the runner VMs, one port each. Network IDs (UUIDs) go to Nova as they are; names are looked
            up in the Network API (Neutron) once per run.
          - V(none) alone boots the VMs without a network (the runner then cannot reach GitHub unless the image
            brings its own way out; useful for tests and special clouds). V(auto) alone lets Nova choose the
            project's only network, or allocate one with Neutron's auto-allocated topology (compute API 2.37).
            Neither needs a Network API endpoint that the collection can reach.
          - To use a network that is named C(none) or C(auto), give its ID.
        type: list
        elements: str
        required: true
      security_groups:
        description:
          - Security groups (names or IDs) of the VMs' ports. Use one that allows no inbound traffic.
          - Names are checked in the Network API (Neutron) once per run; IDs (UUIDs) go to Nova as they are.
            They apply to ports, so leave them out with O(pools[].networks=none).
        type: list
        elements: str
        default: []
      key_name:
        description: Nova key pair to inject, for debugging.
        type: str
      boot_from_volume:
        description: Boot from a new volume instead of the image on local disk.
        type: bool
        default: false
      volume_size:
        description: Size in GiB of the boot volume, with O(pools[].boot_from_volume).
        type: int
      availability_zone:
        description: Availability zone of the runner VMs.
        type: str
      user_data:
        description: What the cloud-init script does before it starts the runner.
        type: dict
        suboptions:
          extra_env:
            description:
              - Environment variables for the runner (names must be valid shell variable names).
              - Not secret. The values travel in the VM's user data, which anyone who may read the server's details
                in the cloud can read, and in the task's arguments, which Ansible shows at high verbosity. Give
                secrets to jobs as GitHub Actions secrets instead.
            type: dict
            default: {}
          pre_job_script:
            description: Shell script the runner runs before each job (C(ACTIONS_RUNNER_HOOK_JOB_STARTED)).
            type: str
          http_proxy:
            description: HTTP proxy for the runner.
            type: str
          https_proxy:
            description: HTTPS proxy for the runner.
            type: str
          no_proxy:
            description: Hosts that bypass the proxy.
            type: str
          runner_user:
            description: Unprivileged user that runs the runner when the script runs as root.
            type: str
            default: runner
          runner:
            description: Where the VM finds the runner software.
            type: dict
            suboptions:
              directory:
                description: Directory of a runner installed in the image (holds C(run.sh)).
                type: str
                default: /opt/actions-runner
              tarball_url:
                description: Download the runner from this URL into O(pools[].user_data.runner.directory) at boot.
                type: str
              tarball_sha256:
                description: SHA-256 of the tarball; required with O(pools[].user_data.runner.tarball_url).
                type: str
      bootstrap_timeout:
        description: A runner not online this long after its VM was created has failed and is replaced.
          Seconds, or a string such as C(15m).
        type: raw
        default: 15m
      offline_grace:
        description: A runner that was online and has been offline this long is lost and is replaced.
        type: raw
        default: 5m
      registration_grace:
        description: How long a VM without a GitHub runner, or a runner without a VM, may exist
          before it is cleaned up (covers the moments between the two creations).
        type: raw
        default: 2m
      max_lifetime:
        description: Idle runners older than this are replaced.
        type: raw
        default: 24h
      create_concurrency:
        description: Creations and deletions run at most this many at once.
        type: int
        default: 4
      max_create_per_run:
        description:
          - Most runners the pool creates in one run (between V(1) and V(1000)), a guard against a size typed wrong.
          - When the pool needs more, the rest is left for later runs, reported in the result's C(plan.limited) and
            warned about (also in check mode).
        type: int
        default: 20
      max_replace_per_run:
        description:
          - Most outdated idle runners the pool replaces in one run (V(0) replaces none).
          - Each VM records a hash of the pool settings that shape its runner (C(ghr_spec) metadata), namely O(pools[].labels),
            O(pools[].runner_group), O(pools[].flavor), O(pools[].image), O(pools[].networks),
            O(pools[].security_groups), O(pools[].key_name), O(pools[].boot_from_volume), O(pools[].volume_size),
            O(pools[].availability_zone) and O(pools[].user_data). A runner whose VM records another hash than the
            pool's current settings is outdated. Sizes, timings and the GitHub scope do not change the hash.
          - Outdated idle runners are deleted and replaced by runners of the current settings, within
            O(pools[].max_create_per_run), and not while the pool's creations back off. Busy outdated runners are left
            alone; being ephemeral, they end with their job. VMs created by versions that did not record the hash are
            never outdated (what they were created from is unknown); a run with C(state=flushed) replaces them.
        type: int
        default: 5
      creation_backoff:
        description:
          - After failed creations, wait this long before the pool creates again; the wait doubles with each
            reconcile that records more failures, up to O(pools[].creation_backoff_max), and a random part of up to
            half of it spreads pools that failed together.
          - A failed creation is a server create the cloud refused (quota, HTTP 5xx, ...) or a VM of the pool that
            went to ERROR before its runner came online (for example C(No valid host was found.), or a quota that
            concurrent creates went past). A new VM of the pool that becomes ACTIVE with its runner online ends the
            backoff. Deletions go on meanwhile.
          - Seconds, or a string such as C(1m). V(0) records the failures but never waits.
        type: raw
        default: 1m
      creation_backoff_max:
        description: The longest wait of O(pools[].creation_backoff).
        type: raw
        default: 30m
"""

    LOCKING = r"""
options:
  lock_dir:
    description:
      - Directory of the local pool lock files (and the small per-pool history kept beside them).
      - Defaults to C(~/.cache/selfhosted.github_runners). Keep it on storage that lasts from one run to the
        next; where it does not (for example AWX execution environments), set O(mongodb_uri). Without the
        history, a lost runner is only replaced after the pool's C(bootstrap_timeout).
    type: path
  mongodb_uri:
    description:
      - When set, pool locks are leases in this MongoDB, so reconciles on several hosts or AWX nodes never overlap.
      - If not set, the environment variable E(MONGODB_URI) is used.
    type: str
    # Stated, as the job queue fragment that a module may extend too requires it.
    required: false
  mongodb_database:
    description: Database of the lock leases (and of the job queue, where a module reads it).
    type: str
    default: github_runners
  lock_timeout:
    description:
      - Seconds to wait for a pool lock held by another reconcile before failing; the failure names the holder.
      - As soon as a lock is found held, a warning names who holds it (for example C(waiting for the lock of pool
        small held by pid 8682 on host-a since 2026-01-01T12:00:00Z)); it is written to the module's standard error
        at once too, for a run that is cut short before it returns.
    type: float
    default: 300
  lock_ttl:
    description:
      - With O(mongodb_uri), seconds a pool's lease lasts unless renewed (at least 10). A thread renews it every
        C((lock_ttl - margin) / 3) seconds while the pool is reconciled, the margin being a quarter of O(lock_ttl),
        at most 30 seconds.
      - A lease not renewed within C(lock_ttl - margin) counts as lost; the pool then makes no further change and
        the task fails, naming it. A reconcile that crashed blocks its pools for at most O(lock_ttl).
      - Keep it well above the clock difference between the hosts that reconcile.
    type: float
    default: 120
requirements:
  - pymongo >= 4.6 (with O(mongodb_uri))
"""
