"""GithubSim: the GitHub simulator as the sandbox launcher sees it.

    sim = GithubSim(world)                # registers world.services["github"]
    running = [serve(s) for s in sim.services()]
    env = sim.env()                       # GITHUB_API_URL etc., once served
    sim.register_control(control.router)  # POST/GET /jobs, webhooks, deliveries, validation

Config keys (world.config, set here when absent; README documents them):
  github.rate_limit (5000)             primary rate-limit budget per caller per window
  github.rate_limit_window (3600)      seconds until the budget resets
  github.installation_token_ttl (3600) lifetime of App installation tokens
  github.registration_token_ttl (3600) lifetime of registration/remove tokens
  github.lost_job_timeout (1.0)        how long a job whose runner went offline stays in progress
  github.webhook_timeout (2.0)         per-delivery HTTP timeout
  github.validate (env GHR_SANDBOX_VALIDATE=1)  validate responses/webhooks against GitHub's schemas
  github.fault_reset_seconds (2.0)     reset time of the injected primary rate limit
  github.fault_retry_after (1)         Retry-After of the injected secondary rate limit
  github.default_job_duration (0.5)    job duration when POST /jobs gives none
  runner.start_delay (0.2)             VM ACTIVE -> runner online
  runner.idle_timeout (0)              an idle runner exits after this long (0 = waits forever)
  runner.offline_after (0.5)           fraction of the job after which runner_offline_mid_job hits
  runner.vm_poll_interval (0.25)       how often deleted VMs are looked for (OpenStack sims without a delete hook)

Domain faults (world.faults; `match` filters on the attributes listed):
  github_rate_limit_primary    method, route, identity (user|installation|app): the caller's budget is
                               used up until github.fault_reset_seconds from now (403, X-RateLimit-Remaining 0)
  github_rate_limit_secondary  method, route, identity: one 403 (or 429 with status=429) with Retry-After
                               (the fault's headers["Retry-After"], else github.fault_retry_after)
  webhook_dropped              event, action, url: that delivery is never sent (recorded as "dropped")
  webhook_duplicated           event, action, url: that delivery is sent twice with the same GUID
  runner_never_online          name, server_id: see runner_vm.py
  runner_offline_mid_job       name, server_id: see runner_vm.py
HTTP faults (latency, status, reset, hang) apply as everywhere, with service "github" and the
route templates of api.py.
"""

from __future__ import annotations

import collections
import os
import random
import threading
import typing as t

from tests.sandbox.github import control
from tests.sandbox.github.api import API_PREFIX, GithubService
from tests.sandbox.github.auth import Credentials, RateLimits
from tests.sandbox.github.model import Org
from tests.sandbox.github.nova_watch import NovaWatcher
from tests.sandbox.github.runner_vm import RunnerAgents
from tests.sandbox.github.shapes import Shapes
from tests.sandbox.github.state import GithubState
from tests.sandbox.github.webhooks import Webhooks
from tests.sandbox.httpserver import Request, Response, Router, Service
from tests.sandbox.openapi import SchemaValidator

if t.TYPE_CHECKING:
    from tests.sandbox.world import World

ORG = "octo-org"
REPOSITORIES = ("app", "infra")
WEBHOOK_SECRET = "sandbox-webhook-secret"  # a fixed test value, written to the env file


def _defaults() -> dict[str, t.Any]:
    return {
        "github.rate_limit": 5000,
        "github.rate_limit_window": 3600.0,
        "github.installation_token_ttl": 3600.0,
        "github.registration_token_ttl": 3600.0,
        "github.lost_job_timeout": 1.0,
        "github.webhook_timeout": 2.0,
        "github.validate": os.environ.get("GHR_SANDBOX_VALIDATE") == "1",
        "github.fault_reset_seconds": 2.0,
        "github.fault_retry_after": 1,
        "github.default_job_duration": 0.5,
        "runner.start_delay": 0.2,
        "runner.idle_timeout": 0.0,
        "runner.offline_after": 0.5,
        "runner.vm_poll_interval": 0.25,
    }


class GithubSim:
    def __init__(self, world: World, seed: int = 0) -> None:
        self.world = world
        for key, value in _defaults().items():
            world.config.setdefault(key, value)
        self.service = GithubService(self)
        self.shapes = Shapes(lambda: self.service.base_url, API_PREFIX)
        self.credentials = Credentials(random.Random(seed), app_id=424242, installation_id=31337, user_id=583231)
        self.rate_limits = RateLimits(world.config)
        self.webhooks = Webhooks(world, seed + 1, ("organization", 9919), self._validate_webhook)
        self.store = GithubState(world, self.shapes, self.webhooks, seed + 2)
        self.store.installation_id = self.credentials.installation_id
        self.org: Org = self.store.add_org(ORG, 9919)
        for i, name in enumerate(REPOSITORIES):
            self.store.add_repo(self.org, name, 700_000_001 + i)
        self.agents = RunnerAgents(self)
        self.store.hooks = self.agents
        self._validator: SchemaValidator | None = None
        self._validator_lock = threading.Lock()
        self.validated: collections.Counter[tuple[str, str, str, int]] = collections.Counter()
        self.violations: list[dict[str, t.Any]] = []
        self._openstack: t.Any = None
        self.watchers: dict[str, NovaWatcher] = {}
        self._delete_hook = False
        world.services["github"] = self
        world.add_ticker(self.tick)
        self._attach_openstack()
        if world.config.get("github.validate"):
            # Load (on a fresh machine: fetch) GitHub's schemas now, not on the first request.
            threading.Thread(target=lambda: self.validator, name="github-schemas", daemon=True).start()

    # The launcher's interface -------------------------------------------------------------
    def services(self) -> list[Service]:
        return [self.service]

    def env(self) -> dict[str, str]:
        return {
            "GITHUB_API_URL": self.shapes.api if self.service.base_url else "",
            "GITHUB_TOKEN": self.credentials.user_token,
            "GITHUB_APP_ID": str(self.credentials.app_id),
            "GITHUB_APP_PRIVATE_KEY": self.credentials.private_key_pem,
            "GITHUB_APP_INSTALLATION_ID": str(self.credentials.installation_id),
            "GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "GITHUB_REPOSITORY": f"{ORG}/{REPOSITORIES[0]}",
            "GITHUB_ORG": ORG,
        }

    def state(self) -> dict[str, t.Any]:
        """Runners, jobs and runner processes as the simulator sees them (control GET /state)."""
        with self.world.lock:
            runners = [
                {**self.shapes.runner(r), "scope": r.scope.key, "lost": r.lost, "job_id": r.job_id}
                for scope in self.store.all_scopes()
                for r in scope.runners.values()
            ]
            return {
                "runners": runners,
                "jobs": [job.summary() for job in self.store.jobs.values()],
                "agents": self.agents.snapshot(),
                "webhooks": {
                    "subscriptions": len(self.webhooks.subscriptions),
                    "deliveries": len(self.webhooks.deliveries),
                },
            }

    def runner_busy(self, server_id: str) -> bool | None:
        """The busy flag of the GitHub runner that VM `server_id` runs, None when it runs none (any longer).

        The VM's own runner, the one its JIT config registered: another runner of the same name
        (a retry's, in another scope) is not this VM's.
        """
        with self.world.lock:
            agent = self.agents.by_server.get(server_id)
            runner = agent.runner if agent is not None else None
            if runner is None or self.store.runners.get(runner.id) is not runner:
                return None
            return runner.busy

    def register_control(self, router: Router) -> None:
        control.register(self, router)

    def stop(self) -> None:
        for name in list(self.watchers):
            self.unwatch_nova(name)
        self.webhooks.stop()

    # Real Nova clouds --------------------------------------------------------------------------
    def watch_nova(self, name: str, auth: t.Mapping[str, str], interval: float, tags: str | None) -> NovaWatcher:
        """Runner agents for the servers of a real Nova (replacing a watcher of the same name)."""
        self.unwatch_nova(name)
        watcher = NovaWatcher(self, name, auth, interval=interval, tags=tags)
        watcher.start()
        self.watchers[name] = watcher
        return watcher

    def unwatch_nova(self, name: str) -> bool:
        watcher = self.watchers.pop(name, None)
        if watcher is None:
            return False
        watcher.stop()
        return True

    # Time ------------------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        if self._openstack is None:
            self._attach_openstack()
        elif not self._delete_hook:
            self.agents.poll_deleted(self._openstack, now)
        self.store.tick(now)

    def _attach_openstack(self) -> None:
        openstack = self.world.services.get("openstack")
        if openstack is None:
            return
        self._openstack = openstack
        openstack.on_server_active.append(self.agents.on_server_active)
        for hook in ("on_server_deleted", "on_server_delete"):
            hooks = getattr(openstack, hook, None)
            if isinstance(hooks, list):
                hooks.append(self.agents.on_server_deleted)
                self._delete_hook = True
                break

    # Validation ------------------------------------------------------------------------------
    @property
    def validator(self) -> SchemaValidator | None:
        if not self.world.config.get("github.validate"):
            return None
        with self._validator_lock:
            if self._validator is None:
                self._validator = SchemaValidator.load()
            return self._validator

    def validate_response(self, req: Request, resp: Response) -> None:
        validator = self.validator
        if validator is None or req.route == "<unmatched>" or req.injected_body:
            return
        errors = validator.validate_response(req.method, req.route, resp.status, resp.body)
        self._record(("response", req.method, req.route, resp.status), errors)

    def _validate_webhook(self, event: str, action: str, payload: dict[str, t.Any]) -> None:
        validator = self.validator
        if validator is None:
            return
        errors = validator.validate_webhook(event, action, payload)
        self._record(("webhook", event, action, 0), errors)

    def _record(self, key: tuple[str, str, str, int], errors: list[str]) -> None:
        kind, method, route, status = key
        with self.world.lock:
            self.validated[key] += 1
            if errors:
                violation = {"kind": kind, "method": method, "route": route, "status": status, "errors": errors}
                self.violations.append(violation)
                self.world.events.add("openapi_violation", **violation)
