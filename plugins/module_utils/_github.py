# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GitHub's self-hosted runner endpoints: runners, runner groups, JIT configs, queued jobs.

Each method is one REST operation (or one paginated listing) sent through
`_github_transport.GithubTransport`, which owns retries, rate limits, redaction
and pagination; this file only knows paths, request bodies and response shapes.
"""

from __future__ import annotations

import datetime
import threading
import typing as t
import urllib.parse

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import (
    ConfigError,
    GithubError,
    RateLimitError,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._github_transport import (
    DEFAULT_API_URL,
    GITHUB_IMPORT_ERROR,
    HAS_GITHUB,
    GithubAuth,
    GithubTransport,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import (
    GithubRunner,
    JobStatusReport,
    QueuedJob,
    QueuedJobScan,
    Scope,
    ScopeKind,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._ratelimit import GithubRate

__all__ = ["GITHUB_IMPORT_ERROR", "HAS_GITHUB", "GithubAuth", "GithubClient"]

#: The default runner group; repositories have no other.
DEFAULT_RUNNER_GROUP_ID = 1


def _runner_from_json(data: object) -> GithubRunner:
    """A runner from GitHub's JSON; ValueError when it is not of the documented shape.

    Nothing is guessed: a runner whose busy flag cannot be read must not look idle.
    """
    if not isinstance(data, t.Mapping):
        raise ValueError(f"a runner is {type(data).__name__}, not an object")
    ident, name, busy, labels = data.get("id"), data.get("name"), data.get("busy"), data.get("labels", [])
    if isinstance(ident, bool) or not isinstance(ident, int) or not isinstance(name, str) or not isinstance(busy, bool):
        raise ValueError("a runner without an integer id, a string name and a boolean busy flag")
    if not isinstance(labels, list) or not all(
        isinstance(x, t.Mapping) and isinstance(x.get("name"), str) for x in labels
    ):
        raise ValueError(f"runner {name!r} has labels that are not a list of objects with a name")
    return GithubRunner(
        id=ident,
        name=name,
        online=data.get("status") == "online",
        busy=busy,
        labels=tuple(str(label["name"]) for label in labels),
    )


class GithubClient:
    """Runner operations on one GitHub with one credential; thread-safe.

    `options` are those of `GithubTransport` (verify, retry, max_rate_limit_wait, ...).
    """

    def __init__(self, auth: GithubAuth, api_url: str = DEFAULT_API_URL, timeout: float = 30, **options: t.Any) -> None:
        self.transport = GithubTransport(auth, api_url, timeout, **options)
        self._lock = threading.Lock()
        self._group_ids: t.Dict[t.Tuple[Scope, str], int] = {}

    @property
    def total_calls(self) -> int:
        return self.transport.total_calls

    def rate_status(self) -> GithubRate:
        return self.transport.rate_status()

    def hold_mutations_until(self, until: datetime.datetime) -> None:
        self.transport.hold_mutations_until(until)

    # Runners --------------------------------------------------------------------------
    @staticmethod
    def _path(scope: Scope, *parts: t.Union[str, int]) -> str:
        segments = [urllib.parse.quote(s, safe="") for s in scope.api_path.split("/")]
        segments += [urllib.parse.quote(str(p), safe="") for p in parts]
        return "/" + "/".join(segments)

    def list_runners(self, scope: Scope) -> t.List[GithubRunner]:
        """All self-hosted runners of `scope`: one request per 100 runners."""
        path = self._path(scope, "actions", "runners")
        runners = []
        for item in self.transport.paginate(path, "runners"):
            try:
                runners.append(_runner_from_json(item))
            except ValueError as exc:
                raise GithubError(f"GET {path}", f"the answer lists {exc}", 200) from None
        return runners

    def runner_group_id(self, scope: Scope, name: t.Optional[str]) -> int:
        """The id of runner group `name` (None: the default group). Repositories only have the default."""
        if name is None or name.casefold() == "default":
            return DEFAULT_RUNNER_GROUP_ID
        if scope.kind is ScopeKind.REPOSITORY:
            raise ConfigError("runner_group", f"runner groups belong to organizations and enterprises, not {scope}")
        key = (scope, name.casefold())
        with self._lock:
            if key in self._group_ids:
                return self._group_ids[key]
        path = self._path(scope, "actions", "runner-groups")
        for group in self.transport.paginate(path, "runner_groups"):
            if str(group.get("name", "")).casefold() == name.casefold():
                with self._lock:
                    self._group_ids[key] = int(group["id"])
                return int(group["id"])
        raise ConfigError("runner_group", f"{scope} has no runner group named {name!r}")

    def generate_jit_config(
        self,
        scope: Scope,
        name: str,
        labels: t.Sequence[str],
        runner_group_id: int = DEFAULT_RUNNER_GROUP_ID,
        work_folder: str = "_work",
    ) -> t.Tuple[GithubRunner, str]:
        """Register a just-in-time runner; returns it and its encoded JIT config (a secret)."""
        path = self._path(scope, "actions", "runners", "generate-jitconfig")
        body = {"name": name, "runner_group_id": runner_group_id, "labels": list(labels), "work_folder": work_folder}
        data = self.transport.request("POST", path, body=body)[1]
        try:
            runner, config = _runner_from_json(data["runner"]), str(data["encoded_jit_config"])
        except (KeyError, TypeError, ValueError):
            raise GithubError(f"POST {path}", "the response has no runner or encoded_jit_config", 201) from None
        return runner, config

    def delete_runner(self, scope: Scope, runner_id: int) -> t.Literal["deleted", "not_found", "busy"]:
        """204 deleted, 404 not found (already gone), 422 busy (GitHub refuses while a job runs)."""
        path = self._path(scope, "actions", "runners", runner_id)
        try:
            self.transport.request("DELETE", path)
        except GithubError as exc:
            if isinstance(exc, RateLimitError):
                raise
            if exc.status == 404:
                return "not_found"
            if exc.status == 422:
                return "busy"
            raise
        return "deleted"

    def runner_exists(self, scope: Scope, runner_id: int) -> bool:
        """Whether GitHub still has the runner (GET; 404 = gone)."""
        path = self._path(scope, "actions", "runners", runner_id)
        try:
            self.transport.request("GET", path)
        except GithubError as exc:
            if exc.status == 404 and not isinstance(exc, RateLimitError):
                return False
            raise
        return True

    # Jobs --------------------------------------------------------------------------------
    def get_job(self, repository: str, job_id: int) -> t.Optional[JobStatusReport]:
        """What GitHub says of one workflow job: its status and the runner it ran on; None on 404."""
        path = self._path(Scope(ScopeKind.REPOSITORY, repository), "actions", "jobs", job_id)
        try:
            data = self.transport.request("GET", path)[1]
        except GithubError as exc:
            if exc.status == 404 and not isinstance(exc, RateLimitError):
                return None
            raise
        if not isinstance(data, dict) or not isinstance(data.get("status"), str):
            raise GithubError(f"GET {path}", "the response has no job status", 200)
        runner = data.get("runner_name")
        return JobStatusReport(
            status=data["status"],
            conclusion=data.get("conclusion") if isinstance(data.get("conclusion"), str) else None,
            runner_name=runner if isinstance(runner, str) and runner else None,
        )

    def find_runner(self, scope: Scope, name: str) -> t.Optional[GithubRunner]:
        """The runner of `scope` named `name`, from one (paginated) listing; None when there is none."""
        return next((runner for runner in self.list_runners(scope) if runner.name == name), None)

    def list_queued_jobs(
        self, scope: Scope, *, max_requests: t.Optional[int] = None, rate_limit_floor: int = 0
    ) -> QueuedJobScan:
        """Queued jobs of `scope`: its repositories' queued and in-progress runs, then their jobs.

        Costs two requests (queued and in-progress runs) per repository plus one per run, and for
        an organization the listing of its repositories (most recently pushed first) before.
        The scan stops short, and says so, before a request past `max_requests` or while
        GitHub's remaining budget is below `rate_limit_floor`, or when GitHub rate-limits it.
        """
        allowance = _Allowance(self.transport, max_requests, rate_limit_floor)
        try:
            if scope.kind is ScopeKind.REPOSITORY:
                repositories = [scope.name]
            elif scope.kind is ScopeKind.ORGANIZATION:
                listing = self.transport.paginate(
                    self._path(scope, "repos"), None, {"sort": "pushed", "direction": "desc"}, allow=allowance.take
                )
                repositories = [str(r["full_name"]) for r in listing]
            else:
                raise ConfigError(
                    "count_queued_jobs", f"{scope} lists no repositories: count the jobs of its organizations"
                )
        except (_Spent, RateLimitError) as exc:
            return QueuedJobScan(requests=allowance.spent, skipped_repositories=None, stopped_by=_reason(exc))
        jobs: t.List[QueuedJob] = []
        for done, repository in enumerate(repositories):
            try:
                self._queued_jobs_of(repository, allowance, jobs)
            except (_Spent, RateLimitError) as exc:
                # The jobs found so far count, those of the repository cut short too: a backlog
                # larger than the cap must still size the pools, not read as no jobs at all.
                return QueuedJobScan(
                    tuple(jobs), allowance.spent, done, len(repositories) - done, stopped_by=_reason(exc)
                )
        return QueuedJobScan(tuple(jobs), allowance.spent, len(repositories))

    def _queued_jobs_of(self, repository: str, allowance: _Allowance, jobs: t.List[QueuedJob]) -> None:
        """Append the repository's queued jobs to `jobs`, each as soon as its run's listing is read."""
        repo = Scope(ScopeKind.REPOSITORY, repository)
        runs_path = self._path(repo, "actions", "runs")
        # A run with one job started is in_progress while its other jobs still queue.
        # Keyed by id: a run that starts between the two listings shows in both.
        runs = {
            int(run["id"]): run
            for status in ("queued", "in_progress")
            for run in self.transport.paginate(runs_path, "workflow_runs", {"status": status}, allow=allowance.take)
        }
        for run in runs.values():
            jobs_path = self._path(repo, "actions", "runs", int(run["id"]), "jobs")
            for job in self.transport.paginate(jobs_path, "jobs", allow=allowance.take):
                if job.get("status") == "queued":
                    jobs.append(
                        QueuedJob(
                            id=int(job["id"]),
                            run_id=int(job.get("run_id") or run["id"]),
                            repository=repository,
                            labels=tuple(str(label) for label in job.get("labels") or ()),
                            created_at=job.get("created_at"),
                        )
                    )

    def close(self) -> None:
        self.transport.close()


class _Spent(Exception):
    """The scan may make no further request; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _reason(exc: Exception) -> str:
    return exc.reason if isinstance(exc, _Spent) else "rate_limited"


class _Allowance:
    """The requests one scan may still make: at most `max_requests`, none while the budget is below `floor`."""

    def __init__(self, transport: GithubTransport, max_requests: t.Optional[int], floor: int) -> None:
        self._transport = transport
        self._max = max_requests
        self._floor = floor
        self.spent = 0

    def take(self) -> None:
        if self._max is not None and self.spent >= self._max:
            raise _Spent("max_requests")
        remaining = self._transport.rate_limit_remaining
        if remaining is not None and remaining < self._floor:
            raise _Spent("rate_limit_floor")
        self.spent += 1
