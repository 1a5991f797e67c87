"""The GitHub REST API, served under /api/v3 as GitHub Enterprise Server does.

Clients take `<service url>/api/v3` as their base URL (PyGithub: `Github(base_url=...)`).
Route templates are the REST description's own paths, so each response can be
validated against the matching operation.
"""

from __future__ import annotations

import itertools
import threading
import time
import typing as t
import urllib.parse
import uuid

from tests.sandbox.github.auth import Bucket, Identity
from tests.sandbox.github.model import Scope, iso
from tests.sandbox.httpserver import HttpError, Request, Response, Service

if t.TYPE_CHECKING:
    from tests.sandbox.github.sim import GithubSim

API_PREFIX = "/api/v3"
API_VERSIONS = frozenset({"2022-11-28", "2026-03-10"})
DOCS = "https://docs.github.com/rest"
DOCS_RATE = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
DOCS_RUNNERS = "https://docs.github.com/rest/actions/self-hosted-runners"
# Calls only a GitHub App (JWT) may make; everything else needs a user or installation token.
APP_ROUTES = frozenset(
    {
        "/app",
        "/app/installations",
        "/app/installations/{installation_id}",
        "/app/installations/{installation_id}/access_tokens",
        "/repos/{owner}/{repo}/installation",
        "/orgs/{org}/installation",
    }
)
PERMISSIONS = {
    "actions": "read",
    "administration": "write",
    "metadata": "read",
    "organization_self_hosted_runners": "write",
}


def _error(status: int, message: str, docs: str = DOCS) -> dict[str, t.Any]:
    return {"message": message, "documentation_url": docs, "status": str(status)}


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


class GithubService(Service):
    name = "github"

    def __init__(self, sim: GithubSim) -> None:
        super().__init__(sim.world)
        self.sim = sim
        self._local = threading.local()
        self._request_ids = itertools.count(1)
        r = self.router
        r.add("GET", "/rate_limit", self.get_rate_limit)
        r.add("GET", "/app", self.get_app)
        r.add("GET", "/app/installations", self.list_installations)
        r.add("GET", "/app/installations/{installation_id}", self.get_installation)
        r.add("POST", "/app/installations/{installation_id}/access_tokens", self.create_access_token)
        r.add("GET", "/repos/{owner}/{repo}/installation", self.get_scope_installation)
        r.add("GET", "/orgs/{org}/installation", self.get_scope_installation)
        r.add("GET", "/repos/{owner}/{repo}", self.get_repo)
        r.add("GET", "/orgs/{org}", self.get_org)
        r.add("GET", "/orgs/{org}/repos", self.list_org_repos)
        for base in ("/repos/{owner}/{repo}", "/orgs/{org}"):
            r.add("GET", f"{base}/actions/runners", self.list_runners)
            r.add("POST", f"{base}/actions/runners/generate-jitconfig", self.generate_jitconfig)
            r.add("POST", f"{base}/actions/runners/registration-token", self.create_runner_token)
            r.add("POST", f"{base}/actions/runners/remove-token", self.create_runner_token)
            r.add("GET", f"{base}/actions/runners/{{runner_id}}", self.get_runner)
            r.add("DELETE", f"{base}/actions/runners/{{runner_id}}", self.delete_runner)
        r.add("GET", "/orgs/{org}/actions/runner-groups", self.list_runner_groups)
        r.add("GET", "/orgs/{org}/actions/runner-groups/{runner_group_id}", self.get_runner_group)
        r.add("GET", "/repos/{owner}/{repo}/actions/jobs/{job_id}", self.get_job)
        r.add("GET", "/repos/{owner}/{repo}/actions/runs", self.list_runs)
        r.add("GET", "/repos/{owner}/{repo}/actions/runs/{run_id}", self.get_run)
        r.add("GET", "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs", self.list_run_jobs)

    # Framework hooks ------------------------------------------------------------------------
    def strip_prefix(self, path: str) -> str:
        if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            return path[len(API_PREFIX) :] or "/"
        return "/<outside the API>" + path

    def error_response(self, req: Request, status: int, message: str) -> Response:
        docs = DOCS_RATE if "rate limit" in message else DOCS
        return Response(status, _error(status, message, docs))

    def before(self, req: Request) -> None:
        self._local.handled = True
        self._local.identity = None
        version = req.header("x-github-api-version")
        if version is not None and version not in API_VERSIONS:
            raise HttpError(400, f"API version {version} is not supported.")
        identity = self.sim.credentials.identify(req.header("authorization"))
        self._local.identity = identity
        if req.route == "/rate_limit":
            return  # answered for anyone, and not counted against the limit
        if identity is None:
            raise HttpError(401, "Requires authentication")
        if req.route in APP_ROUTES and identity.kind != "app":
            raise HttpError(401, "A JSON web token could not be decoded")
        if req.route not in APP_ROUTES and identity.kind == "app":
            raise HttpError(403, "Resource not accessible by integration")
        self._charge(req, identity)

    def _charge(self, req: Request, identity: Identity) -> None:
        now = time.time()
        with self.world.lock:
            config = self.world.config
            limits = self.sim.rate_limits
            match = {"method": req.method, "route": req.route, "identity": identity.kind}
            if self.world.faults.take("github_rate_limit_primary", **match) is not None:
                limits.exhaust(identity.rate_key, now, float(config["github.fault_reset_seconds"]))
            secondary = self.world.faults.take("github_rate_limit_secondary", **match)
            bucket = limits.bucket(identity.rate_key, now)
            if secondary is not None:
                status = secondary.status if secondary.status in (403, 429) else 403
                retry_after = secondary.headers.get("Retry-After", str(config["github.fault_retry_after"]))
                message = (
                    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
                    f"If you reach out to GitHub Support for help, please include the request ID {self._request_id()}."
                )
                raise HttpError(status, message, headers={"Retry-After": retry_after})
            if bucket.used >= bucket.limit:
                who = {"user": "user ID", "installation": "installation ID", "app": "app ID"}[identity.kind]
                raise HttpError(
                    403,
                    f"API rate limit exceeded for {who} {identity.subject_id}. If you reach out to GitHub Support "
                    f"for help, please include the request ID {self._request_id()}.",
                )
            bucket.used += 1

    def after(self, req: Request, resp: Response) -> None:
        handled = getattr(self._local, "handled", False)
        identity: Identity | None = getattr(self._local, "identity", None) if handled else None
        self._local.handled = False
        if not handled:
            try:
                identity = self.sim.credentials.identify(req.header("authorization"))
            except HttpError:
                identity = None
        with self.world.lock:
            bucket = self.sim.rate_limits.bucket(identity.rate_key if identity else "anonymous", time.time())
        present = {name.lower() for name in resp.headers}  # an injected fault's headers win
        defaults = {
            **self._rate_headers(bucket),
            "X-GitHub-Media-Type": "github.v3; format=json",
            "X-GitHub-Api-Version-Selected": "2022-11-28",
            "X-GitHub-Request-Id": self._request_id(),
        }
        resp.headers.update({k: v for k, v in defaults.items() if k.lower() not in present})
        if handled:
            self.sim.validate_response(req, resp)

    @staticmethod
    def _rate_headers(bucket: Bucket) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(bucket.limit),
            "X-RateLimit-Remaining": str(max(0, bucket.limit - bucket.used)),
            "X-RateLimit-Reset": str(int(bucket.reset)),
            "X-RateLimit-Used": str(bucket.used),
            "X-RateLimit-Resource": "core",
        }

    def _request_id(self) -> str:
        return f"{next(self._request_ids):04X}:{uuid.uuid4().hex[:8].upper()}"

    # Helpers ------------------------------------------------------------------------------------
    def _scope(self, req: Request) -> Scope:
        state = self.sim.store
        if "org" in req.params:
            org = state.org(req.params["org"])
            if org is None:
                raise HttpError(404, "Not Found")
            return org.scope
        repo = state.repo(req.params["owner"], req.params["repo"])
        if repo is None:
            raise HttpError(404, "Not Found")
        return repo.scope

    def _page(self, req: Request, items: t.Iterable[t.Any], total: int) -> tuple[list[t.Any], dict[str, str]]:
        """One page (per_page ≤ 100, page ≥ 1) and its Link header, as GitHub paginates."""
        per_page = _int(req.arg("per_page"), 30)
        per_page = 30 if per_page < 1 else min(per_page, 100)
        page = max(1, _int(req.arg("page"), 1))
        start = (page - 1) * per_page
        chosen = list(itertools.islice(items, start, start + per_page))
        last = max(1, -(-total // per_page))
        params = {k: v[0] for k, v in req.query.items()}

        def link(p: int, rel: str) -> str:
            query = urllib.parse.urlencode({**params, "per_page": per_page, "page": p})
            return f'<{req.base_url}{req.path}?{query}>; rel="{rel}"'

        links = []
        if page > 1:
            links.append(link(min(page - 1, last), "prev"))
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links.append(link(1, "first"))
        return chosen, ({"Link": ", ".join(links)} if links else {})

    # Meta and accounts -------------------------------------------------------------------------
    def get_rate_limit(self, req: Request) -> Response:
        identity: Identity | None = self._local.identity
        with self.world.lock:
            bucket = self.sim.rate_limits.bucket(identity.rate_key if identity else "anonymous", time.time())
            core = {"limit": bucket.limit, "remaining": max(0, bucket.limit - bucket.used), "reset": int(bucket.reset)}
        core["used"] = bucket.used
        reset = int(time.time()) + 3600

        def other(limit: int) -> dict[str, int]:
            return {"limit": limit, "used": 0, "remaining": limit, "reset": reset}

        resources = {
            "core": core,
            "search": other(30),
            "graphql": other(5000),
            "integration_manifest": other(5000),
            "code_search": other(10),
            "actions_runner_registration": other(10000),
        }
        return Response(200, {"resources": resources, "rate": core})

    def get_app(self, req: Request) -> Response:
        sim = self.sim
        return Response(200, sim.shapes.app(sim.credentials.app_id, sim.org, PERMISSIONS))

    def _installation(self) -> dict[str, t.Any]:
        sim = self.sim
        return sim.shapes.installation(sim.credentials.installation_id, sim.credentials.app_id, sim.org, PERMISSIONS)

    def list_installations(self, req: Request) -> Response:
        page, headers = self._page(req, [self._installation()], 1)
        return Response(200, page, headers)

    def get_installation(self, req: Request) -> Response:
        if _int(req.params["installation_id"], -1) != self.sim.credentials.installation_id:
            raise HttpError(404, "Not Found")
        return Response(200, self._installation())

    def get_scope_installation(self, req: Request) -> Response:
        with self.world.lock:
            self._scope(req)
        return Response(200, self._installation())

    def create_access_token(self, req: Request) -> Response:
        sim = self.sim
        if _int(req.params["installation_id"], -1) != sim.credentials.installation_id:
            raise HttpError(404, "Not Found")
        with self.world.lock:
            ttl = float(self.world.config["github.installation_token_ttl"])
            token = sim.credentials.issue_installation_token(sim.credentials.installation_id, ttl)
        body = {
            "token": token.token,
            "expires_at": iso(token.expires),
            "permissions": PERMISSIONS,
            "repository_selection": "all",
        }
        return Response(201, body)

    def get_repo(self, req: Request) -> Response:
        with self.world.lock:
            repo = self.sim.store.repo(req.params["owner"], req.params["repo"])
            if repo is None:
                raise HttpError(404, "Not Found")
            return Response(200, self.sim.shapes.repo_full(repo))

    def get_org(self, req: Request) -> Response:
        with self.world.lock:
            org = self.sim.store.org(req.params["org"])
            if org is None:
                raise HttpError(404, "Not Found")
            return Response(200, self.sim.shapes.org_full(org))

    def list_org_repos(self, req: Request) -> Response:
        with self.world.lock:
            org = self.sim.store.org(req.params["org"])
            if org is None:
                raise HttpError(404, "Not Found")
            repos = list(org.repos.values())
            page, headers = self._page(req, repos, len(repos))
            return Response(200, [self.sim.shapes.repo_list_item(r) for r in page], headers)

    # Self-hosted runners --------------------------------------------------------------------
    def list_runners(self, req: Request) -> Response:
        with self.world.lock:
            scope = self._scope(req)
            name = req.arg("name")
            if name is not None:
                ident = scope.by_name.get(name.lower())
                runners = [scope.runners[ident]] if ident is not None else []
            else:
                runners = scope.runners.values()  # type: ignore[assignment]
            total = len(runners)
            page, headers = self._page(req, runners, total)
            body = {"total_count": total, "runners": [self.sim.shapes.runner(r) for r in page]}
        return Response(200, body, headers)

    def get_runner(self, req: Request) -> Response:
        with self.world.lock:
            runner = self._scope(req).runners.get(_int(req.params["runner_id"], -1))
            if runner is None:
                raise HttpError(404, "Not Found")
            return Response(200, self.sim.shapes.runner(runner))

    def delete_runner(self, req: Request) -> Response:
        with self.world.lock:
            runner = self._scope(req).runners.get(_int(req.params["runner_id"], -1))
            if runner is None:
                raise HttpError(404, "Not Found")
            if runner.busy:
                self.world.events.add("runner_delete_refused", id=runner.id, name=runner.name, busy=True)
                message = f'Bad request - Runner "{runner.name}" is still running a job"'
                raise HttpError(422, message, body=_error(422, message, DOCS_RUNNERS))
            self.sim.store.delete_runner(runner, "api")
            self.sim.store.hooks.on_runner_deleted(runner)
        return Response(204)

    def generate_jitconfig(self, req: Request) -> Response:
        body = self._json_object(req)
        for key in ("name", "runner_group_id", "labels"):
            if key not in body:
                self._invalid(f"Invalid input: object is missing required key: {key}.")
        name, group_id, labels = body["name"], body["runner_group_id"], body["labels"]
        work_folder = body.get("work_folder", "_work")
        if not isinstance(name, str) or not name.strip():
            self._invalid("Invalid input: `name` must be a non-empty string.")
        if not isinstance(group_id, int) or isinstance(group_id, bool):
            self._invalid("Invalid input: `runner_group_id` must be an integer.")
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            self._invalid("Invalid input: `labels` must be an array of strings.")
        if not 1 <= len(labels) <= 100:
            self._invalid("Invalid input: `labels` must have between 1 and 100 items.")
        if any(not label.strip() for label in labels):
            self._invalid("Invalid input: a label name cannot be empty.")
        if not isinstance(work_folder, str):
            self._invalid("Invalid input: `work_folder` must be a string.")
        with self.world.lock:
            scope = self._scope(req)
            if group_id not in self.sim.store.runner_groups or (scope.kind == "repo" and group_id != 1):
                raise HttpError(404, "Not Found")
            if name.lower() in scope.by_name:
                message = f"Already exists - A runner with the name {name} already exists."
                raise HttpError(409, message, body=_error(409, message, DOCS_RUNNERS))
            runner, encoded = self.sim.store.create_jit_runner(scope, name, labels, group_id, work_folder, time.time())
            return Response(201, {"runner": self.sim.shapes.runner(runner), "encoded_jit_config": encoded})

    def create_runner_token(self, req: Request) -> Response:
        with self.world.lock:
            self._scope(req)
            ttl = float(self.world.config["github.registration_token_ttl"])
            token = "A" + "".join(self.sim.store.rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", k=28))
        return Response(201, {"token": token, "expires_at": iso(time.time() + ttl)})

    @staticmethod
    def _json_object(req: Request) -> dict[str, t.Any]:
        try:
            body = req.json()
        except HttpError:
            raise HttpError(400, "Problems parsing JSON") from None
        if not isinstance(body, dict):
            raise HttpError(400, "Problems parsing JSON")
        return body

    @staticmethod
    def _invalid(message: str) -> t.NoReturn:
        raise HttpError(422, message, body=_error(422, message, DOCS_RUNNERS))

    def list_runner_groups(self, req: Request) -> Response:
        with self.world.lock:
            scope = self._scope(req)
            org = self.sim.store.org(scope.key)
            assert org is not None
            groups = list(self.sim.store.runner_groups.values())
            page, headers = self._page(req, groups, len(groups))
            body = {"total_count": len(groups), "runner_groups": [self.sim.shapes.runner_group(org, g) for g in page]}
        return Response(200, body, headers)

    def get_runner_group(self, req: Request) -> Response:
        with self.world.lock:
            org = self.sim.store.org(req.params["org"])
            group = self.sim.store.runner_groups.get(_int(req.params["runner_group_id"], -1))
            if org is None or group is None:
                raise HttpError(404, "Not Found")
            return Response(200, self.sim.shapes.runner_group(org, group))

    # Workflow runs and jobs -------------------------------------------------------------------
    def get_job(self, req: Request) -> Response:
        with self.world.lock:
            scope = self._scope(req)
            job = self.sim.store.jobs.get(_int(req.params["job_id"], -1))
            if job is None or job.repo.scope is not scope:
                raise HttpError(404, "Not Found")
            return Response(200, self.sim.shapes.job(job))

    def list_runs(self, req: Request) -> Response:
        with self.world.lock:
            scope = self._scope(req)
            status = req.arg("status")
            runs = [
                run
                for run in reversed(self.sim.store.runs.values())
                if run.repo.scope is scope and (status is None or status in (run.status, run.conclusion))
            ]
            page, headers = self._page(req, runs, len(runs))
            body = {"total_count": len(runs), "workflow_runs": [self.sim.shapes.run(r) for r in page]}
        return Response(200, body, headers)

    def _run(self, req: Request) -> t.Any:
        scope = self._scope(req)
        run = self.sim.store.runs.get(_int(req.params["run_id"], -1))
        if run is None or run.repo.scope is not scope:
            raise HttpError(404, "Not Found")
        return run

    def get_run(self, req: Request) -> Response:
        with self.world.lock:
            return Response(200, self.sim.shapes.run(self._run(req)))

    def list_run_jobs(self, req: Request) -> Response:
        with self.world.lock:
            run = self._run(req)
            jobs = [self.sim.store.jobs[j] for j in run.job_ids]
            page, headers = self._page(req, jobs, len(jobs))
            body = {"total_count": len(jobs), "jobs": [self.sim.shapes.job(j) for j in page]}
        return Response(200, body, headers)
