# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The interfaces the reconcile needs from GitHub and the cloud.

The real clients (`_github.GithubClient`, `_openstack.CloudClient`) implement them;
unit tests implement them with small in-memory fakes.
"""

from __future__ import annotations

import datetime
import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import PoolSpec
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import (
    GithubRunner,
    JobStatusReport,
    QueuedJobScan,
    Scope,
    VmInfo,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._ratelimit import GithubRate

DeleteRunnerResult = t.Literal["deleted", "not_found", "busy"]
DeleteServerResult = t.Literal["deleted", "not_found"]


class GithubPort(t.Protocol):
    @property
    def total_calls(self) -> int:
        """Requests made so far (for the API-call counts a reconcile reports)."""

    def list_runners(self, scope: Scope) -> t.List[GithubRunner]: ...

    def generate_jit_config(
        self,
        scope: Scope,
        name: str,
        labels: t.Sequence[str],
        runner_group_id: int,
        work_folder: str = "_work",
    ) -> t.Tuple[GithubRunner, str]: ...

    def delete_runner(self, scope: Scope, runner_id: int) -> DeleteRunnerResult: ...

    def runner_exists(self, scope: Scope, runner_id: int) -> bool: ...

    def runner_group_id(self, scope: Scope, name: t.Optional[str]) -> int: ...

    def list_queued_jobs(
        self, scope: Scope, *, max_requests: t.Optional[int] = None, rate_limit_floor: int = 0
    ) -> QueuedJobScan: ...

    def get_job(self, repository: str, job_id: int) -> t.Optional[JobStatusReport]:
        """GitHub's status of a workflow job; None when GitHub does not know it (404)."""

    def find_runner(self, scope: Scope, name: str) -> t.Optional[GithubRunner]:
        """The runner of `scope` with that name, if any."""

    def rate_status(self) -> GithubRate:
        """Remaining budget, time spent waiting on the write bucket, and any hold GitHub asked for."""

    def hold_mutations_until(self, until: datetime.datetime) -> None:
        """Make no mutating request before `until`."""


class CloudPort(t.Protocol):
    @property
    def total_calls(self) -> int:
        """Requests made so far (for the API-call counts a reconcile reports)."""

    @property
    def list_bytes(self) -> int:
        """Bytes of server listings received so far (reported beside the call counts)."""

    def list_servers(self, controller_id: str, pool: t.Optional[str] = None) -> t.List[VmInfo]: ...

    def resolve(self, pool: PoolSpec) -> None:
        """Look up the pool's flavor, image, networks and security groups, before any runner is registered.

        Each name once per run: answers and failures alike are kept for the rest of the run.
        Raises `UnresolvedError` naming the pool's field (e.g. ``pools[0].image``).
        """

    def create_server(
        self,
        name: str,
        pool: PoolSpec,
        user_data: str,
        metadata: t.Mapping[str, str],
        tags: t.Sequence[str],
    ) -> str: ...

    def delete_server(self, server_id: str) -> DeleteServerResult: ...
