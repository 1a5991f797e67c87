# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Carries out a pool's plan: creates and deletes runners with bounded concurrency.

Safety rules live here, at the edge where the calls are made:
- the pool's flavor, image, networks and security groups are resolved before its
  first JIT config, so a bad name costs no runner registration;
- a runner is created as JIT config first, then the server; when the server
  cannot be created, the JIT runner record is deleted again;
- a runner that GitHub lists is deleted on GitHub first, and its VM only after
  GitHub answered 204 or 404; a 422 (busy) leaves the VM alone unless forced;
- GitHub is asked only in the scope the deletion names (where the runner was
  registered): a deletion that needs GitHub's answer but names no scope is kept;
- after a failed server create, a quota or a rate-limit error no further creation
  is attempted this run;
- every mutating call is preceded by the guard, which raises to stop the pool's
  changes (its lock was lost, or a stop was requested); a stop request refuses only
  the first call of a creation or deletion: one already begun is completed.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import datetime
import functools
import threading
import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import DEFAULT_CONCURRENCY, PoolSpec
from ansible_collections.selfhosted.github_runners.plugins.module_utils._drift import spec_hash
from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import (
    CloudError,
    RateLimitError,
    RunnerError,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._identity import (
    controller_tag,
    pool_tag,
    runner_name,
    vm_metadata,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._interrupt import Stopped
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import Deletion, Plan
from ansible_collections.selfhosted.github_runners.plugins.module_utils._ports import CloudPort, GithubPort
from ansible_collections.selfhosted.github_runners.plugins.module_utils._userdata import render_user_data

Clock = t.Callable[[], datetime.datetime]
#: Called with the mutating call about to be made (e.g. "create server ci1-small-…"); raises a
#: RunnerError to stop it and every later one.
Guard = t.Callable[[str], None]


def no_guard(call: str) -> None:
    """The guard of callers that hold no lock."""


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@dataclasses.dataclass
class ExecutionResult:
    created: t.List[str] = dataclasses.field(default_factory=list)
    deleted: t.Dict[str, t.List[str]] = dataclasses.field(default_factory=lambda: collections.defaultdict(list))
    skipped_busy: t.List[str] = dataclasses.field(default_factory=list)
    # Deletions that failed, or found the runner still on GitHub although the listing missed it.
    undeleted: t.List[str] = dataclasses.field(default_factory=list)
    errors: t.List[str] = dataclasses.field(default_factory=list)
    # What the cloud said to each server create that failed (for the pool's creation backoff).
    create_failures: t.List[str] = dataclasses.field(default_factory=list)
    # Why creations or deletions of the plan were not started (a stop request), or None.
    stopped: t.Optional[str] = None

    @property
    def changed(self) -> bool:
        return bool(self.created) or any(self.deleted.values())


class PlanExecutor:
    def __init__(
        self,
        github: GithubPort,
        cloud: CloudPort,
        controller_id: str,
        clock: Clock = utcnow,
        guard: Guard = no_guard,
    ) -> None:
        self.github = github
        self.cloud = cloud
        self.controller_id = controller_id
        self.clock = clock
        self.guard = guard
        self._lock = threading.Lock()

    def execute(self, pool: PoolSpec, plan: Plan) -> ExecutionResult:
        result = ExecutionResult()
        # Deletions first: they free quota and max_runners room for the creations.
        self._delete_all(pool.name, pool.create_concurrency, plan, result)
        # A deletion GitHub refused (the runner took a job meanwhile) or that failed leaves
        # its runner: create that many fewer, so the pool never goes past max_runners.
        create = plan.create - len(result.skipped_busy) - len(result.undeleted)
        if create > 0 and result.stopped is None:
            self._create_all(pool, create, result)
        result.deleted = dict(result.deleted)
        return result

    def preview(self, pool: PoolSpec, plan: Plan) -> ExecutionResult:
        """What check mode can tell without changing anything: whether the names of a pool to grow resolve."""
        result = ExecutionResult()
        if plan.create > 0:
            self._resolve(pool, result)
        return result

    def execute_deletions(self, plan: Plan, concurrency: int = DEFAULT_CONCURRENCY) -> ExecutionResult:
        """The deletions of a plan without a pool spec (a pool no longer configured)."""
        result = ExecutionResult()
        self._delete_all(plan.pool, concurrency, plan, result)
        result.deleted = dict(result.deleted)
        return result

    # Creation ----------------------------------------------------------------
    def _resolve(self, pool: PoolSpec, result: ExecutionResult) -> bool:
        try:
            self.cloud.resolve(pool)
        except RunnerError as exc:
            result.errors.append(f"pool {pool.name}: {exc}")
            return False
        return True

    def _create_all(self, pool: PoolSpec, count: int, result: ExecutionResult) -> None:
        if not self._resolve(pool, result):
            return
        try:
            group_id = self.github.runner_group_id(pool.scope, pool.runner_group)
        except RunnerError as exc:
            result.errors.append(f"pool {pool.name}: cannot resolve runner group: {exc}")
            return
        stop = threading.Event()

        def create_one() -> None:
            if stop.is_set():
                return
            try:
                self._create(pool, group_id, result)
            except (CloudError, RateLimitError):
                stop.set()  # more attempts would only fail the same way, each with a JIT registration
                raise

        self._run_all(pool.name, pool.create_concurrency, [create_one] * count, result)

    def _create(self, pool: PoolSpec, group_id: int, result: ExecutionResult) -> None:
        try:
            name = self.create_runner(pool, group_id, on_cleanup_error=result.errors.append)
        except CloudError as exc:
            with self._lock:
                result.create_failures.append(exc.detail)
            raise
        with self._lock:
            result.created.append(name)

    def create_runner(
        self,
        pool: PoolSpec,
        group_id: int,
        name: t.Optional[str] = None,
        on_cleanup_error: t.Callable[[str], None] = lambda message: None,
        job_id: t.Optional[int] = None,
    ) -> str:
        """JIT runner first, then its server; returns the runner (and VM) name.

        `job_id` (reactive runners) is recorded on the VM, which the planner then protects from
        scale-down while GitHub has yet to hand the runner its job.
        """
        # Before the JIT registration: a bad name must not cost one (answers are cached per run).
        self.cloud.resolve(pool)
        name = name or runner_name(self.controller_id, pool.name)
        self.guard(f"register runner {name}")
        runner, jit_config = self.github.generate_jit_config(pool.scope, name, pool.labels, group_id)
        try:
            self._go_on(f"create server {name}")
            self.cloud.create_server(
                name,
                pool,
                render_user_data(pool, jit_config),
                vm_metadata(runner.id, self.clock(), pool.scope, job_id=job_id, spec=spec_hash(pool)),
                [controller_tag(self.controller_id), pool_tag(pool.name)],
            )
        except RunnerError:
            # Leave no runner record without a VM behind (unguarded: it only undoes our own call).
            try:
                self.github.delete_runner(pool.scope, runner.id)
            except RunnerError as cleanup:
                with self._lock:
                    on_cleanup_error(f"runner {name}: could not delete its JIT record after a failed create: {cleanup}")
            raise
        return name

    # Deletion ----------------------------------------------------------------
    def _delete_all(self, pool_name: str, concurrency: int, plan: Plan, result: ExecutionResult) -> None:
        tasks = [functools.partial(self._delete, deletion, result) for deletion in plan.delete]
        self._run_all(pool_name, concurrency, tasks, result)

    def _delete(self, deletion: Deletion, result: ExecutionResult) -> None:
        try:
            outcome = self.delete_runner(deletion)
        except RunnerError:
            with self._lock:
                result.undeleted.append(deletion.name)
            raise
        with self._lock:
            if outcome == "busy":
                result.skipped_busy.append(deletion.name)
            elif outcome == "kept":
                result.undeleted.append(deletion.name)
            else:
                result.deleted[deletion.reason.value].append(deletion.name)

    def delete_runner(self, deletion: Deletion) -> t.Literal["deleted", "busy", "kept"]:
        """GitHub first, in the deletion's scope; the VM only after 204 or 404, or when a busy runner's deletion is forced."""
        if deletion.runner_id is not None and deletion.scope is None:
            return "kept"  # GitHub cannot be asked: nothing is deleted on a guess
        if deletion.confirm_gone and deletion.runner_id is not None and deletion.scope is not None:
            if self.github.runner_exists(deletion.scope, deletion.runner_id):
                return "kept"  # the next listing shows it; nothing is deleted on one listing's word
        elif deletion.runner_id is not None and deletion.scope is not None:
            self.guard(f"delete runner {deletion.name}")
            outcome = self.github.delete_runner(deletion.scope, deletion.runner_id)
            # Forced, a busy runner loses its VM; a busy record without a VM cannot go yet.
            if outcome == "busy" and (not deletion.busy or deletion.vm_id is None):
                return "busy"
            if deletion.vm_id is not None:
                self._go_on(f"delete server {deletion.name}")  # its runner is gone: the VM goes too
                self.cloud.delete_server(deletion.vm_id)
            return "deleted"
        if deletion.vm_id is not None:
            self.guard(f"delete server {deletion.name}")
            self.cloud.delete_server(deletion.vm_id)
        return "deleted"

    def _go_on(self, call: str) -> None:
        """The guard of a call that completes an operation already begun: a stop request lets it finish."""
        with contextlib.suppress(Stopped):
            self.guard(call)

    # Concurrency -------------------------------------------------------------
    def _run_all(
        self, pool_name: str, concurrency: int, tasks: t.Sequence[t.Callable[[], None]], result: ExecutionResult
    ) -> None:
        if not tasks:
            return
        workers = max(1, min(concurrency, len(tasks)))
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"ghr-{pool_name}") as ex:
            futures = [ex.submit(task) for task in tasks]
            for future in concurrent.futures.as_completed(futures):
                exc = future.exception()
                if exc is None:
                    continue
                if not isinstance(exc, RunnerError):
                    raise exc
                if isinstance(exc, Stopped):
                    result.stopped = str(exc)  # not an error: what was left is reported as such
                    continue
                with self._lock:
                    message = f"pool {pool_name}: {exc}"
                    if message not in result.errors:  # one line per distinct failure, not per attempt
                        result.errors.append(message)
