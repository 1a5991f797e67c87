# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Value types shared by the core: what we observe, what we derive, what we plan.

Plain frozen dataclasses without I/O, so every decision made on them is a pure
function that unit tests can drive case by case.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import typing as t


class ScopeKind(str, enum.Enum):
    REPOSITORY = "repository"
    ORGANIZATION = "organization"
    ENTERPRISE = "enterprise"


@dataclasses.dataclass(frozen=True)
class Scope:
    """Where runners register: a repository ``owner/repo``, an organization or an enterprise."""

    kind: ScopeKind
    name: str

    @property
    def api_path(self) -> str:
        """The REST path prefix of the scope, e.g. ``repos/owner/repo``."""
        prefix = {
            ScopeKind.REPOSITORY: "repos",
            ScopeKind.ORGANIZATION: "orgs",
            ScopeKind.ENTERPRISE: "enterprises",
        }[self.kind]
        return f"{prefix}/{self.name}"

    def __str__(self) -> str:
        return f"{self.kind.value} {self.name}"


#: Nova statuses of a server that Nova will not run.
VM_ERROR_STATUSES = frozenset({"ERROR"})
#: Nova statuses of a server that is off or going away: its runner has ended.
VM_ENDED_STATUSES = frozenset({"SHUTOFF", "DELETED", "SOFT_DELETED"})


@dataclasses.dataclass(frozen=True)
class VmInfo:
    """One of our servers, as the cloud lists it."""

    id: str
    name: str
    status: str  # Nova status: BUILD, ACTIVE, SHUTOFF, ERROR, DELETED, ...
    created_at: datetime.datetime  # ghr_created_at metadata, else Nova's `created`
    pool: str
    runner_id: t.Optional[int] = None  # ghr_runner_id metadata
    job_id: t.Optional[int] = None  # ghr_job_id metadata (reactive runners only)
    fault: t.Optional[str] = None  # Nova fault message for ERROR servers
    # ghr_scope metadata: where its runner was registered; None on VMs from before it was recorded.
    scope: t.Optional[Scope] = None
    # ghr_spec metadata: the hash of the pool spec it was created from; None on VMs from before it was recorded.
    spec: t.Optional[str] = None
    # Nova's flavor (its name, microversion >= 2.47, else its id) and image id; None when Nova shows none
    # (a server booted from a volume has no image).
    flavor: t.Optional[str] = None
    image: t.Optional[str] = None

    @property
    def failed(self) -> bool:
        return self.status.upper() in VM_ERROR_STATUSES

    @property
    def ended(self) -> bool:
        return self.status.upper() in VM_ENDED_STATUSES

    @property
    def may_run(self) -> bool:
        """Whether its runner may still be running: every status but failed and ended ones.

        MIGRATING, REBOOT, PAUSED, SUSPENDED, SHELVED, RESIZE, UNKNOWN and the like
        keep (or may give back) the runner's process, so a runner the listing missed
        is confirmed gone with GitHub before such a VM is deleted.
        """
        return not (self.failed or self.ended)


@dataclasses.dataclass(frozen=True)
class GithubRunner:
    """One self-hosted runner, as GitHub lists it."""

    id: int
    name: str
    online: bool
    busy: bool
    labels: t.Tuple[str, ...] = ()
    scope: t.Optional[Scope] = None  # the scope whose listing showed it


#: What a reconcile does with a pool: keep it at size, empty it, or replace its idle runners.
Mode = t.Literal["present", "absent", "flushed"]


class RunnerState(str, enum.Enum):
    """Derived state of one runner (VM and/or GitHub record); never stored."""

    BOOTING = "booting"
    IDLE = "idle"
    BUSY = "busy"
    FAILED = "failed"
    LOST = "lost"
    FINISHED = "finished"
    ORPHAN = "orphan"
    EXPIRED = "expired"


#: States whose runner counts towards the pool's size.
ALIVE_STATES = frozenset({RunnerState.BOOTING, RunnerState.IDLE, RunnerState.BUSY})


@dataclasses.dataclass(frozen=True)
class PoolTiming:
    """The ages (seconds) that the state table compares with."""

    bootstrap_timeout: float = 900.0
    offline_grace: float = 300.0
    registration_grace: float = 120.0
    max_lifetime: float = 86400.0


@dataclasses.dataclass(frozen=True)
class RunnerView:
    """The joined view of one runner: its VM, its GitHub record, its derived state."""

    name: str
    state: RunnerState
    vm: t.Optional[VmInfo]
    github: t.Optional[GithubRunner]
    # Seconds since the VM was created; without a VM, since the runner was first
    # seen (RunnerHistory), 0 when that is unknown.
    age: float
    # Where the runner is registered: the listing that showed it, else the VM's recorded
    # scope, else the pool's; None when none of them is known (a pool no longer configured).
    scope: t.Optional[Scope] = None
    # Its VM was created from another spec than the pool's current one (see _drift); False when unknown.
    outdated: bool = False

    @property
    def busy(self) -> bool:
        return self.github is not None and self.github.busy


class DeleteReason(str, enum.Enum):
    """Why a runner is deleted; reported as counts per reason."""

    FAILED = "failed"
    LOST = "lost"
    FINISHED = "finished"
    ORPHAN = "orphan"
    EXPIRED = "expired"
    SCALE_DOWN = "scale_down"
    OUTDATED = "outdated"  # an idle runner of an older pool spec, replaced
    FLUSH = "flush"
    ABSENT = "absent"


@dataclasses.dataclass(frozen=True)
class Deletion:
    name: str
    reason: DeleteReason
    vm_id: t.Optional[str]
    runner_id: t.Optional[int]
    busy: bool = False  # True only for forced deletions of busy runners
    # The VM still runs but the runner listing did not show its runner: make sure GitHub no
    # longer has it before deleting the VM (a listing can miss a runner while pages shift).
    confirm_gone: bool = False
    # Where GitHub is asked about the runner: the scope it is registered in, never another.
    scope: t.Optional[Scope] = None


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one reconcile of one pool will do."""

    pool: str
    desired: int
    alive: int
    create: int
    delete: t.Tuple[Deletion, ...] = ()
    # Runners left for a later run: busy ones that `absent`/`flushed` keep (no force), and
    # VMs whose runner GitHub cannot confirm gone yet (see planner).
    deferred: t.Tuple[str, ...] = ()
    # Creations the pool's creation backoff puts off to a later run (see _backoff).
    held: int = 0
    # Creations the pool's max_create_per_run puts off to a later run.
    limited: int = 0
    # Runners created from an older spec of the pool (busy ones included: they end with their job).
    outdated: t.Tuple[str, ...] = ()
    # What the user should know about the plan (the size guards).
    warnings: t.Tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return self.create == 0 and not self.delete


@dataclasses.dataclass(frozen=True)
class QueuedJob:
    """A queued workflow job (for backfilling lost webhooks)."""

    id: int
    run_id: int
    repository: str  # owner/repo
    labels: t.Tuple[str, ...]
    created_at: t.Optional[str] = None


@dataclasses.dataclass(frozen=True)
class JobStatusReport:
    """GitHub's word on one workflow job (GET .../actions/jobs/{id})."""

    status: str  # queued, in_progress, completed, waiting, requested, pending
    conclusion: t.Optional[str] = None
    runner_name: t.Optional[str] = None


@dataclasses.dataclass(frozen=True)
class QueuedJobScan:
    """The queued jobs of one scope, as far as the requests allowed to find them went."""

    jobs: t.Tuple[QueuedJob, ...] = ()
    requests: int = 0  # pages requested
    repositories: int = 0  # looked at in full
    # Not (fully) looked at; None when not even the repositories could be listed.
    skipped_repositories: t.Optional[int] = 0
    stopped_by: t.Optional[str] = None  # why the scan stopped short: "max_requests", "rate_limit_floor", ...

    def __add__(self, other: QueuedJobScan) -> QueuedJobScan:
        """Two scans (of two scopes) as one."""
        skipped = self.skipped_repositories, other.skipped_repositories
        return QueuedJobScan(
            self.jobs + other.jobs,
            self.requests + other.requests,
            self.repositories + other.repositories,
            None if None in skipped else sum(t.cast(t.Tuple[int, int], skipped)),
            self.stopped_by or other.stopped_by,
        )


# The labels GitHub gives a self-hosted runner for its operating system and architecture.
GENERIC_LABEL_FAMILIES: t.Tuple[t.FrozenSet[str], ...] = (
    frozenset({"linux", "windows", "macos"}),
    frozenset({"x64", "arm", "arm64"}),
)


def job_matches(job_labels: t.Iterable[str], runner_labels: t.Iterable[str], *, generic_aside: bool = False) -> bool:
    """True when a runner with `runner_labels` can take a job asking for `job_labels` (case-insensitive).

    GitHub gives every self-hosted runner the `self-hosted` label. With `generic_aside`, a
    job's OS or architecture label (`linux`, `x64`, ...) need not be among the runner's
    labels unless the runner lists another label of the same kind: a job for `arm64` never
    goes to runners labelled `x64`.
    """
    have = {label.casefold() for label in runner_labels} | {"self-hosted"}
    for label in job_labels:
        folded = label.casefold()
        if folded in have:
            continue
        family = next((family for family in GENERIC_LABEL_FAMILIES if folded in family), None)
        if not (generic_aside and family is not None and not family & have):
            return False
    return True
