"""The GitHub simulator's state and its time-driven behaviour (runner lifecycle, job model).

Every method here runs under `world.lock` (the REST handlers, the control API and the
ticker take it). Timers live in one heap, so a tick costs nothing when nothing is due,
and job assignment runs only after something changed, scanning the idle runners of a
scope once per distinct label set of the queued jobs.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import random
import typing as t

from tests.sandbox.github import jitconfig
from tests.sandbox.github.model import Job, Org, Repo, Runner, RunnerGroup, Scope, WorkflowRun
from tests.sandbox.github.shapes import SANDBOX_EPOCH, Shapes

if t.TYPE_CHECKING:
    from tests.sandbox.github.webhooks import Webhooks
    from tests.sandbox.world import World


class RunnerHooks(t.Protocol):
    """What the runner processes (the simulated VMs) hear from GitHub."""

    def on_job_started(self, runner: Runner, job: Job) -> None: ...

    def on_runner_finished(self, runner: Runner) -> None: ...

    def on_runner_deleted(self, runner: Runner) -> None: ...


class _NoHooks:
    def on_job_started(self, runner: Runner, job: Job) -> None:
        pass

    def on_runner_finished(self, runner: Runner) -> None:
        pass

    def on_runner_deleted(self, runner: Runner) -> None:
        pass


class GithubState:
    def __init__(
        self,
        world: World,
        shapes: Shapes,
        webhooks: Webhooks,
        seed: int,
    ) -> None:
        self.world = world
        self.config = world.config
        self.shapes = shapes
        self.webhooks = webhooks
        self.rng = random.Random(seed)
        # Every JIT config handed out, so that tests can search their output for leaks.
        self.issued_jit_configs: list[str] = []
        self.hooks: RunnerHooks = _NoHooks()
        self.installation_id = 0
        self.orgs: dict[str, Org] = {}
        self.repos: dict[str, Repo] = {}  # lower-cased full name -> repo
        # The organization's runner groups; repositories only have the default one (id 1).
        self.runner_groups: dict[int, RunnerGroup] = {
            1: RunnerGroup(1, "Default", default=True),
            2: RunnerGroup(2, "sandbox-runners"),
        }
        self.runs: dict[int, WorkflowRun] = {}
        self.jobs: dict[int, Job] = {}
        self.queued: dict[int, Job] = {}  # FIFO of queued jobs
        self.runners: dict[int, Runner] = {}  # every registered runner, any scope
        self._by_name: dict[str, dict[int, Runner]] = {}  # lower-cased runner name -> runners (any scope)
        self._runner_ids = itertools.count(11)
        self._run_ids = itertools.count(9_000_000_001)
        self._job_ids = itertools.count(20_000_000_001)  # beyond 32 bits, as GitHub's are
        self._timers: list[tuple[float, int, t.Callable[[float], None]]] = []
        self._timer_seq = itertools.count()
        self._dirty = False

    # Accounts -----------------------------------------------------------------------------
    def add_org(self, login: str, org_id: int) -> Org:
        scope = Scope("org", login, f"/orgs/{login}", f"/{login}")
        org = Org(login, org_id, float(SANDBOX_EPOCH), scope)
        self.orgs[login.lower()] = org
        return org

    def add_repo(self, org: Org, name: str, repo_id: int) -> Repo:
        full = f"{org.login}/{name}"
        repo = Repo(org, name, repo_id, float(SANDBOX_EPOCH), Scope("repo", full, f"/repos/{full}", f"/{full}"))
        org.repos[name.lower()] = repo
        self.repos[full.lower()] = repo
        return repo

    def org(self, login: str) -> Org | None:
        return self.orgs.get(login.lower())

    def repo(self, owner: str, name: str) -> Repo | None:
        return self.repos.get(f"{owner}/{name}".lower())

    def all_scopes(self) -> t.Iterator[Scope]:
        for org in self.orgs.values():
            yield org.scope
            for repo in org.repos.values():
                yield repo.scope

    # Timers ---------------------------------------------------------------------------------
    def schedule(self, due: float, fn: t.Callable[[float], None]) -> None:
        heapq.heappush(self._timers, (due, next(self._timer_seq), fn))

    def tick(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            _unused, _unused, fn = heapq.heappop(self._timers)
            fn(now)
        if self._dirty:
            self._dirty = False
            self._assign(now)

    # Runners ---------------------------------------------------------------------------------
    def find_runner(self, name: str) -> list[Runner]:
        return list(self._by_name.get(name.lower(), {}).values())

    def create_jit_runner(
        self, scope: Scope, name: str, labels: list[str], group_id: int, work_folder: str, now: float
    ) -> tuple[Runner, str]:
        client_id, modulus = jitconfig.new_credential(self.rng)
        runner = Runner(
            id=next(self._runner_ids),
            name=name,
            scope=scope,
            labels=list(labels),
            runner_group_id=group_id,
            created=now,
            client_id=client_id,
            key_digest=jitconfig.key_digest(modulus),
            work_folder=work_folder,
        )
        scope.runners[runner.id] = runner
        self.runners[runner.id] = runner
        scope.by_name[name.lower()] = runner.id
        self._by_name.setdefault(name.lower(), {})[runner.id] = runner
        encoded = jitconfig.encode(
            runner_id=runner.id,
            runner_name=name,
            github_url=self.shapes.web + scope.html_path,
            pipelines_url=f"{self.shapes.web}/_services/pipelines/{scope.key}",
            work_folder=work_folder,
            client_id=client_id,
            modulus=modulus,
            rng=self.rng,
        )
        self.world.events.add("runner_register", id=runner.id, name=name, scope=scope.key, labels=list(labels))
        self.issued_jit_configs.append(encoded)
        return runner, encoded

    def delete_runner(self, runner: Runner, reason: str) -> None:
        scope = runner.scope
        scope.runners.pop(runner.id, None)
        self.runners.pop(runner.id, None)
        scope.by_name.pop(runner.name.lower(), None)
        scope.idle.pop(runner.id, None)
        named = self._by_name.get(runner.name.lower(), {})
        named.pop(runner.id, None)
        if not named:
            self._by_name.pop(runner.name.lower(), None)
        self.world.events.add(
            "runner_delete", id=runner.id, name=runner.name, scope=scope.key, busy_at_delete=runner.busy, reason=reason
        )

    def connect_runner(self, encoded: str, now: float) -> tuple[Runner | None, str | None]:
        """A runner process presents its JIT config: the runner, or why GitHub refuses it."""
        try:
            config = jitconfig.decode(encoded)
        except ValueError:
            return None, "malformed"
        runner = None
        for scope in self.all_scopes():
            if self.shapes.web + scope.html_path == config.github_url:
                runner = scope.runners.get(config.runner_id)
                break
        else:
            return None, "wrong_scope"
        if runner is None:
            return None, "runner_deleted"
        if runner.client_id != config.client_id or runner.key_digest != config.key_digest:
            return None, "invalid_credentials"
        if runner.connected:
            return None, "already_used"
        runner.connected = True
        runner.status = "online"
        runner.os = "Linux"
        runner.version = "2.329.0"
        self._update_idle(runner)
        self.world.events.add("runner_online", id=runner.id, name=runner.name, scope=runner.scope.key)
        return runner, None

    def runner_offline(self, runner: Runner, reason: str, now: float) -> None:
        """The runner process stopped talking to GitHub (VM gone, powered off, crashed)."""
        if runner.status == "offline":
            return
        runner.status = "offline"
        self._update_idle(runner)
        self.world.events.add(
            "runner_offline", id=runner.id, name=runner.name, scope=runner.scope.key, busy=runner.busy, reason=reason
        )
        job = self.jobs.get(runner.job_id) if runner.job_id is not None else None
        if job is not None and job.status == "in_progress":
            # GitHub keeps the job running (and the runner busy) until it gives up on the runner.
            runner.lost = True
            job.lost_at = now
            self.schedule(now + float(self.config["github.lost_job_timeout"]), lambda at: self._give_up(job, at))

    def _give_up(self, job: Job, now: float) -> None:
        if job.status == "in_progress":
            self.complete_job(job, "failure", now)

    def _update_idle(self, runner: Runner) -> None:
        scope = runner.scope
        if runner.status == "online" and not runner.busy and not runner.took_job and runner.id in scope.runners:
            if runner.id not in scope.idle:
                scope.idle[runner.id] = runner
                self._dirty = True
        else:
            scope.idle.pop(runner.id, None)

    # Jobs ---------------------------------------------------------------------------------------
    def enqueue(
        self, repo: Repo, labels: list[str], duration: float, count: int, name: str, now: float, waiting: float = 0.0
    ) -> WorkflowRun:
        """A workflow run with `count` jobs; with `waiting`, they first wait that long (environment approval)."""
        repo.run_number += 1
        run = WorkflowRun(
            id=next(self._run_ids),
            repo=repo,
            run_number=repo.run_number,
            name=name,
            head_sha=f"{self.rng.getrandbits(160):040x}",
            head_branch="main",
            created=now,
            updated=now,
        )
        self.runs[run.id] = run
        for i in range(count):
            job = Job(
                id=next(self._job_ids),
                run=run,
                name=name if count == 1 else f"{name} ({i + 1})",
                labels=list(labels),
                duration=duration,
                created=now,
            )
            run.job_ids.append(job.id)
            self.jobs[job.id] = job
            if waiting > 0:
                job.status = "waiting"
                self.world.events.add("job_waiting", job_id=job.id, run_id=run.id, repository=repo.full_name)
                self._webhook(job, "waiting")
                self.schedule(now + waiting, functools.partial(self._queue, job))
            else:
                self._queue(job, now)
        self._update_run(run, now)
        return run

    def _queue(self, job: Job, now: float) -> None:
        job.status = "queued"
        self.queued[job.id] = job
        self.world.events.add(
            "job_queued", job_id=job.id, run_id=job.run.id, repository=job.repo.full_name, labels=list(job.labels)
        )
        self._webhook(job, "queued")
        self._update_run(job.run, now)
        self._dirty = True

    def _assign(self, now: float) -> None:
        groups: dict[tuple[Repo, frozenset[str]], list[Job]] = {}
        for job in self.queued.values():
            groups.setdefault((job.repo, job.labels_lower), []).append(job)
        for (repo, labels), jobs in groups.items():
            waiting = iter(jobs)
            pending: Job | None = next(waiting, None)
            # GitHub routes to repository runners first, then to the organization's.
            for scope in (repo.scope, repo.org.scope):
                for runner in list(scope.idle.values()):
                    if pending is None:
                        break
                    if labels <= runner.labels_lower:
                        self._start(pending, runner, now)
                        pending = next(waiting, None)

    def _start(self, job: Job, runner: Runner, now: float) -> None:
        del self.queued[job.id]
        group = self.runner_groups.get(runner.runner_group_id)
        job.status = "in_progress"
        job.started = now
        job.runner_id, job.runner_name = runner.id, runner.name
        job.runner_group_id = runner.runner_group_id
        job.runner_group_name = group.name if group is not None else "Default"
        runner.busy = True
        runner.took_job = True
        runner.job_id = job.id
        self._update_idle(runner)
        self._update_run(job.run, now)
        self.world.events.add(
            "job_in_progress", job_id=job.id, run_id=job.run.id, runner_id=runner.id, runner_name=runner.name
        )
        self._webhook(job, "in_progress")
        self.schedule(now + job.duration, lambda at: self._finish(job, runner, at))
        self.hooks.on_job_started(runner, job)

    def _finish(self, job: Job, runner: Runner, now: float) -> None:
        if job.status == "in_progress" and not runner.lost:
            self.complete_job(job, "success", now)

    def complete_job(self, job: Job, conclusion: str, now: float) -> None:
        job.status = "completed"
        job.conclusion = conclusion
        job.completed = now
        self.queued.pop(job.id, None)
        self._update_run(job.run, now)
        self.world.events.add(
            "job_completed",
            job_id=job.id,
            run_id=job.run.id,
            runner_id=job.runner_id,
            runner_name=job.runner_name,
            conclusion=conclusion,
        )
        self._webhook(job, "completed")
        runner = self.runners.get(job.runner_id) if job.runner_id is not None else None
        if runner is None:
            return
        runner.busy = False
        runner.job_id = None
        if runner.lost:
            return  # an offline runner is not removed: it is lost, and so is its VM
        if runner.ephemeral:
            self.delete_runner(runner, "ephemeral")
            self.hooks.on_runner_finished(runner)

    def _update_run(self, run: WorkflowRun, now: float) -> None:
        statuses = [self.jobs[j].status for j in run.job_ids]
        run.updated = now
        if all(s == "completed" for s in statuses):
            run.status = "completed"
            failed = any(self.jobs[j].conclusion != "success" for j in run.job_ids)
            run.conclusion = "failure" if failed else "success"
        elif all(s == "waiting" for s in statuses):
            run.status = "waiting"
        elif all(s in ("queued", "waiting") for s in statuses):
            run.status = "queued"
        else:
            run.status = "in_progress"

    def _webhook(self, job: Job, action: str) -> None:
        repo = job.repo
        payload = {
            "action": action,
            "workflow_job": self.shapes.webhook_job(job),
            "repository": self.shapes.repo_webhook(repo),
            "organization": self.shapes.org_webhook(repo.org),
            "sender": self.shapes.user("octocat", 583231),
            "installation": self.shapes.installation_lite(self.installation_id),
        }
        self.webhooks.emit("workflow_job", action, payload, job.id)
