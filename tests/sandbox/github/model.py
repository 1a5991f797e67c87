"""What the GitHub simulator knows: organizations, repositories, runners, runs and jobs.

Plain records plus the indexes that keep the hot paths cheap with 1,000 runners:
runners per scope in creation order (pages are slices), a name index per scope,
and the idle runners per scope (job assignment scans only those).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import typing as t


def iso(ts: float | None) -> str | None:
    """GitHub's timestamp format: ISO 8601 UTC with a Z, whole seconds."""
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(int(ts), datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass(eq=False)
class Scope:
    """Where runners are registered: a repository ("repo") or an organization ("org")."""

    kind: str
    key: str  # "octo-org/app" or "octo-org"
    api_path: str  # "/repos/octo-org/app" or "/orgs/octo-org"
    html_path: str  # "/octo-org/app"; a JIT config names web base + this as its GitHub URL
    runners: dict[int, Runner] = dataclasses.field(default_factory=dict)
    by_name: dict[str, int] = dataclasses.field(default_factory=dict)  # lower-cased name -> id
    idle: dict[int, Runner] = dataclasses.field(default_factory=dict)  # online, not busy, free to take a job
    label_ids: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(eq=False)
class Org:
    login: str
    id: int
    created: float
    scope: Scope
    repos: dict[str, Repo] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(eq=False)
class Repo:
    org: Org
    name: str
    id: int
    created: float
    scope: Scope
    run_number: int = 0

    @property
    def full_name(self) -> str:
        return f"{self.org.login}/{self.name}"


@dataclasses.dataclass(eq=False)
class RunnerGroup:
    id: int
    name: str
    default: bool = False
    visibility: str = "all"


@dataclasses.dataclass(eq=False)
class Runner:
    id: int
    name: str
    scope: Scope
    labels: list[str]
    runner_group_id: int
    created: float
    client_id: str  # the JIT config's credential; only its holder can connect
    key_digest: str
    work_folder: str = "_work"
    status: str = "offline"
    busy: bool = False
    os: str = "unknown"
    version: str | None = None
    ephemeral: bool = True
    connected: bool = False  # the JIT config has been used (it is single-use)
    took_job: bool = False  # an ephemeral runner takes one job only
    job_id: int | None = None
    lost: bool = False  # went offline while busy

    @functools.cached_property
    def labels_lower(self) -> frozenset[str]:
        return frozenset(label.lower() for label in self.labels)  # labels never change


@dataclasses.dataclass(eq=False)
class WorkflowRun:
    id: int
    repo: Repo
    run_number: int
    name: str
    head_sha: str
    head_branch: str
    created: float
    updated: float
    job_ids: list[int] = dataclasses.field(default_factory=list)
    status: str = "queued"
    conclusion: str | None = None


@dataclasses.dataclass(eq=False)
class Job:
    id: int
    run: WorkflowRun
    name: str
    labels: list[str]
    duration: float
    created: float
    status: str = "queued"
    conclusion: str | None = None
    started: float | None = None
    completed: float | None = None
    runner_id: int | None = None
    runner_name: str | None = None
    runner_group_id: int | None = None
    runner_group_name: str | None = None
    lost_at: float | None = None

    @property
    def repo(self) -> Repo:
        return self.run.repo

    @functools.cached_property
    def labels_lower(self) -> frozenset[str]:
        return frozenset(label.lower() for label in self.labels)  # labels never change

    def summary(self) -> dict[str, t.Any]:
        return {
            "id": self.id,
            "run_id": self.run.id,
            "repository": self.repo.full_name,
            "name": self.name,
            "labels": list(self.labels),
            "duration": self.duration,
            "status": self.status,
            "conclusion": self.conclusion,
            "runner_id": self.runner_id,
            "runner_name": self.runner_name,
            "created_at": iso(self.created),
            "started_at": iso(self.started),
            "completed_at": iso(self.completed),
        }
