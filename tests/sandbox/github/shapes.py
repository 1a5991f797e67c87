"""JSON bodies shaped as GitHub returns them (REST responses and webhook payloads).

Every URL in a body is built from the API base (`.../api/v3`, like GitHub Enterprise
Server) or the web base, because clients follow them: PyGithub takes a repository's
`url` as the prefix of every later call on it.
"""

from __future__ import annotations

import base64
import typing as t

from tests.sandbox.github.model import Job, Org, Repo, Runner, RunnerGroup, WorkflowRun, iso

SANDBOX_EPOCH = 1_700_000_000  # creation time of the fixed accounts (orgs, app, users)

# Labels GitHub itself sets on a self-hosted runner (read-only); the rest are custom.
_READ_ONLY_LABELS = frozenset({"self-hosted", "linux", "windows", "macos", "x64", "arm", "arm64"})


def node_id(kind: str, ident: int) -> str:
    return base64.b64encode(f"0{len(kind)}:{kind}{ident}".encode()).decode().rstrip("=")


class Shapes:
    def __init__(self, base: t.Callable[[], str], api_prefix: str) -> None:
        self._base = base  # scheme://host:port of the service, known once it is served
        self.api_prefix = api_prefix

    @property
    def api(self) -> str:
        return self._base() + self.api_prefix

    @property
    def web(self) -> str:
        return self._base()

    # Accounts ---------------------------------------------------------------------
    def user(self, login: str, ident: int, type_: str = "User") -> dict[str, t.Any]:
        api, web = self.api, self.web
        return {
            "login": login,
            "id": ident,
            "node_id": node_id("User", ident),
            "avatar_url": f"{web}/avatars/u/{ident}",
            "gravatar_id": "",
            "url": f"{api}/users/{login}",
            "html_url": f"{web}/{login}",
            "followers_url": f"{api}/users/{login}/followers",
            "following_url": f"{api}/users/{login}/following{{/other_user}}",
            "gists_url": f"{api}/users/{login}/gists{{/gist_id}}",
            "starred_url": f"{api}/users/{login}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/users/{login}/subscriptions",
            "organizations_url": f"{api}/users/{login}/orgs",
            "repos_url": f"{api}/users/{login}/repos",
            "events_url": f"{api}/users/{login}/events{{/privacy}}",
            "received_events_url": f"{api}/users/{login}/received_events",
            "type": type_,
            "site_admin": False,
        }

    def org_webhook(self, org: Org) -> dict[str, t.Any]:
        api = self.api
        base = f"{api}/orgs/{org.login}"
        return {
            "login": org.login,
            "id": org.id,
            "node_id": node_id("Organization", org.id),
            "url": base,
            "repos_url": f"{base}/repos",
            "events_url": f"{base}/events",
            "hooks_url": f"{base}/hooks",
            "issues_url": f"{base}/issues",
            "members_url": f"{base}/members{{/member}}",
            "public_members_url": f"{base}/public_members{{/member}}",
            "avatar_url": f"{self.web}/avatars/u/{org.id}",
            "description": "Sandbox organization",
        }

    def org_full(self, org: Org) -> dict[str, t.Any]:
        return {
            **self.org_webhook(org),
            "name": org.login,
            "blog": "",
            "is_verified": False,
            "has_organization_projects": True,
            "has_repository_projects": True,
            "public_repos": 0,
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "html_url": f"{self.web}/{org.login}",
            "type": "Organization",
            "total_private_repos": len(org.repos),
            "owned_private_repos": len(org.repos),
            "created_at": iso(org.created),
            "updated_at": iso(org.created),
            "archived_at": None,
        }

    # Repositories -----------------------------------------------------------------------
    def _repo_urls(self, repo: Repo) -> dict[str, t.Any]:
        base = f"{self.api}/repos/{repo.full_name}"
        templated = {
            "keys_url": "/keys{/key_id}",
            "collaborators_url": "/collaborators{/collaborator}",
            "issue_events_url": "/issues/events{/number}",
            "assignees_url": "/assignees{/user}",
            "branches_url": "/branches{/branch}",
            "blobs_url": "/git/blobs{/sha}",
            "git_tags_url": "/git/tags{/sha}",
            "git_refs_url": "/git/refs{/sha}",
            "trees_url": "/git/trees{/sha}",
            "statuses_url": "/statuses/{sha}",
            "commits_url": "/commits{/sha}",
            "git_commits_url": "/git/commits{/sha}",
            "comments_url": "/comments{/number}",
            "issue_comment_url": "/issues/comments{/number}",
            "contents_url": "/contents/{+path}",
            "compare_url": "/compare/{base}...{head}",
            "archive_url": "/{archive_format}{/ref}",
            "issues_url": "/issues{/number}",
            "pulls_url": "/pulls{/number}",
            "milestones_url": "/milestones{/number}",
            "notifications_url": "/notifications{?since,all,participating}",
            "labels_url": "/labels{/name}",
            "releases_url": "/releases{/id}",
        }
        plain = [
            "forks",
            "teams",
            "hooks",
            "events",
            "tags",
            "languages",
            "stargazers",
            "contributors",
            "subscribers",
            "subscription",
            "merges",
            "downloads",
            "deployments",
        ]
        urls = {f"{name}_url": f"{base}/{name}" for name in plain}
        urls.update({key: base + suffix for key, suffix in templated.items()})
        return urls

    def repo_minimal(self, repo: Repo) -> dict[str, t.Any]:
        owner = self.user(repo.org.login, repo.org.id, "Organization")
        return {
            "id": repo.id,
            "node_id": node_id("Repository", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": True,
            "owner": owner,
            "html_url": f"{self.web}/{repo.full_name}",
            "description": None,
            "fork": False,
            "url": f"{self.api}/repos/{repo.full_name}",
            **self._repo_urls(repo),
        }

    def repo_webhook(self, repo: Repo) -> dict[str, t.Any]:
        host = self.web.split("://", 1)[1].split(":", 1)[0]
        return {
            **self.repo_minimal(repo),
            "created_at": iso(repo.created),
            "updated_at": iso(repo.created),
            "pushed_at": iso(repo.created),
            "git_url": f"git://{host}/{repo.full_name}.git",
            "ssh_url": f"git@{host}:{repo.full_name}.git",
            "clone_url": f"{self.web}/{repo.full_name}.git",
            "svn_url": f"{self.web}/{repo.full_name}",
            "homepage": None,
            "size": 0,
            "stargazers_count": 0,
            "watchers_count": 0,
            "language": None,
            "has_issues": True,
            "has_projects": True,
            "has_downloads": True,
            "has_wiki": False,
            "has_pages": False,
            "has_discussions": False,
            "forks_count": 0,
            "mirror_url": None,
            "archived": False,
            "disabled": False,
            "open_issues_count": 0,
            "license": None,
            "allow_forking": False,
            "is_template": False,
            "web_commit_signoff_required": False,
            "topics": [],
            "visibility": "private",
            "forks": 0,
            "open_issues": 0,
            "watchers": 0,
            "default_branch": "main",
            "custom_properties": {},
        }

    def repo_list_item(self, repo: Repo) -> dict[str, t.Any]:
        """A repository as organization listings give it (GitHub's "minimal-repository")."""
        return {
            **self.repo_webhook(repo),
            "permissions": {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True},
        }

    def repo_full(self, repo: Repo) -> dict[str, t.Any]:
        return {
            **self.repo_webhook(repo),
            "permissions": {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True},
            "subscribers_count": 0,
            "network_count": 0,
            "organization": self.user(repo.org.login, repo.org.id, "Organization"),
        }

    # Runners ------------------------------------------------------------------------------
    def runner(self, runner: Runner) -> dict[str, t.Any]:
        labels = []
        for name in runner.labels:
            ident = runner.scope.label_ids.setdefault(name.lower(), len(runner.scope.label_ids) + 1)
            kind = "read-only" if name.lower() in _READ_ONLY_LABELS else "custom"
            labels.append({"id": ident, "name": name, "type": kind})
        return {
            "id": runner.id,
            "runner_group_id": runner.runner_group_id,
            "name": runner.name,
            "os": runner.os,
            "status": runner.status,
            "busy": runner.busy,
            "ephemeral": runner.ephemeral,
            "version": runner.version,
            "labels": labels,
        }

    def runner_group(self, org: Org, group: RunnerGroup) -> dict[str, t.Any]:
        base = f"{self.api}/orgs/{org.login}/actions/runner-groups/{group.id}"
        return {
            "id": group.id,
            "name": group.name,
            "visibility": group.visibility,
            "default": group.default,
            "runners_url": f"{base}/runners",
            "hosted_runners_url": f"{base}/hosted-runners",
            "inherited": False,
            "allows_public_repositories": False,
            "restricted_to_workflows": False,
            "selected_workflows": [],
            "workflow_restrictions_read_only": False,
        }

    # Actions ------------------------------------------------------------------------------
    def _job_common(self, job: Job) -> dict[str, t.Any]:
        run, repo = job.run, job.repo
        api_repo = f"{self.api}/repos/{repo.full_name}"
        return {
            "id": job.id,
            "run_id": run.id,
            "run_url": f"{api_repo}/actions/runs/{run.id}",
            "run_attempt": 1,
            "node_id": node_id("CheckRun", job.id),
            "head_sha": run.head_sha,
            "url": f"{api_repo}/actions/jobs/{job.id}",
            "html_url": f"{self.web}/{repo.full_name}/actions/runs/{run.id}/job/{job.id}",
            "status": job.status,
            "conclusion": job.conclusion,
            # GitHub reports a queued job as started when it was created.
            "started_at": iso(job.started if job.started is not None else job.created),
            "completed_at": iso(job.completed),
            "created_at": iso(job.created),
            "name": job.name,
            "steps": self._steps(job),
            "check_run_url": f"{api_repo}/check-runs/{job.id}",
            "labels": list(job.labels),
            "runner_id": job.runner_id,
            "runner_name": job.runner_name,
            "runner_group_id": job.runner_group_id,
            "runner_group_name": job.runner_group_name,
            "workflow_name": run.name,
            "head_branch": run.head_branch,
        }

    @staticmethod
    def _steps(job: Job) -> list[dict[str, t.Any]]:
        if job.status == "queued" or job.started is None:
            return []
        done = job.status == "completed"
        return [
            {
                "name": "Set up job",
                "status": "completed" if done else "in_progress",
                "conclusion": job.conclusion if done else None,
                "number": 1,
                "started_at": iso(job.started),
                "completed_at": iso(job.completed) if done else None,
            }
        ]

    def job(self, job: Job) -> dict[str, t.Any]:
        return self._job_common(job)

    def webhook_job(self, job: Job) -> dict[str, t.Any]:
        return self._job_common(job)

    def run(self, run: WorkflowRun) -> dict[str, t.Any]:
        repo = run.repo
        api_run = f"{self.api}/repos/{repo.full_name}/actions/runs/{run.id}"
        workflow_id = 1000 + repo.id
        actor = self.user("octocat", 583231)
        return {
            "id": run.id,
            "name": run.name,
            "node_id": node_id("WorkflowRun", run.id),
            "head_branch": run.head_branch,
            "head_sha": run.head_sha,
            "path": ".github/workflows/ci.yml",
            "display_title": run.name,
            "run_number": run.run_number,
            "run_attempt": 1,
            "event": "push",
            "status": run.status,
            "conclusion": run.conclusion,
            "workflow_id": workflow_id,
            "check_suite_id": run.id + 1,
            "check_suite_node_id": node_id("CheckSuite", run.id + 1),
            "url": api_run,
            "html_url": f"{self.web}/{repo.full_name}/actions/runs/{run.id}",
            "pull_requests": [],
            "created_at": iso(run.created),
            "updated_at": iso(run.updated),
            "run_started_at": iso(run.created),
            "actor": actor,
            "triggering_actor": actor,
            "jobs_url": f"{api_run}/jobs",
            "logs_url": f"{api_run}/logs",
            "check_suite_url": f"{self.api}/repos/{repo.full_name}/check-suites/{run.id + 1}",
            "artifacts_url": f"{api_run}/artifacts",
            "cancel_url": f"{api_run}/cancel",
            "rerun_url": f"{api_run}/rerun",
            "previous_attempt_url": None,
            "workflow_url": f"{self.api}/repos/{repo.full_name}/actions/workflows/{workflow_id}",
            "head_commit": {
                "id": run.head_sha,
                "tree_id": run.head_sha[::-1],
                "message": run.name,
                "timestamp": iso(run.created),
                "author": {"name": "Octo Cat", "email": "octocat@example.com"},
                "committer": {"name": "Octo Cat", "email": "octocat@example.com"},
            },
            "repository": self.repo_minimal(repo),
            "head_repository": self.repo_minimal(repo),
        }

    # Apps -------------------------------------------------------------------------------------
    def app(self, app_id: int, org: Org, permissions: dict[str, str]) -> dict[str, t.Any]:
        return {
            "id": app_id,
            "slug": "sandbox-runners",
            "client_id": f"Iv1.{app_id:016x}",
            "node_id": node_id("App", app_id),
            "owner": self.user(org.login, org.id, "Organization"),
            "name": "Sandbox runners",
            "description": "Manages self-hosted runners in the sandbox",
            "external_url": f"{self.web}/sandbox-runners",
            "html_url": f"{self.web}/apps/sandbox-runners",
            "created_at": iso(SANDBOX_EPOCH),
            "updated_at": iso(SANDBOX_EPOCH),
            "permissions": permissions,
            "events": ["workflow_job"],
            "installations_count": 1,
        }

    def installation(self, inst_id: int, app_id: int, org: Org, permissions: dict[str, str]) -> dict[str, t.Any]:
        # GitHub's description of GET /app/installations requires the account to be both a
        # simple user and an enterprise (allOf), so it carries the enterprise fields too.
        account = {
            **self.user(org.login, org.id, "Organization"),
            "name": org.login,
            "slug": org.login,
            "description": None,
            "website_url": None,
            "created_at": iso(org.created),
            "updated_at": iso(org.created),
        }
        return {
            "id": inst_id,
            "account": account,
            "repository_selection": "all",
            "access_tokens_url": f"{self.api}/app/installations/{inst_id}/access_tokens",
            "repositories_url": f"{self.api}/installation/repositories",
            "html_url": f"{self.web}/organizations/{org.login}/settings/installations/{inst_id}",
            "app_id": app_id,
            "app_slug": "sandbox-runners",
            "target_id": org.id,
            "target_type": "Organization",
            "permissions": permissions,
            "events": ["workflow_job"],
            "created_at": iso(SANDBOX_EPOCH),
            "updated_at": iso(SANDBOX_EPOCH),
            "single_file_name": None,
            "has_multiple_single_files": False,
            "single_file_paths": [],
            "suspended_by": None,
            "suspended_at": None,
        }

    def installation_lite(self, inst_id: int) -> dict[str, t.Any]:
        return {"id": inst_id, "node_id": node_id("Integration::Installation", inst_id)}
