"""The GitHub simulator's routes on the sandbox control API (JSON over HTTP).

POST /jobs                {repository, labels, duration?, count?, name?} -> 201 {run_id, jobs}
GET  /jobs                ?status=&repository= -> {jobs}
POST /webhooks            {url, secret?, events?} -> 201 subscription (default secret: the sandbox's)
GET  /webhooks            -> {webhooks}
POST /webhooks/redeliver  {delivery_id} -> 202 the new delivery (same GUID, redelivery: true)
GET  /deliveries          ?since=<delivery id> -> {deliveries}
GET  /validation          -> {enabled, version, validated, violations}
POST /runner-agents       {encoded_jit_config, name?} -> 201: a runner process without a VM
GET  /runner-agents       -> {agents}
GET  /jit-configs         -> {jit_configs}: every encoded JIT config issued (for leak checks)
"""

from __future__ import annotations

import typing as t

from tests.sandbox.httpserver import HttpError, Request, Response, Router

if t.TYPE_CHECKING:
    from tests.sandbox.github.sim import GithubSim


def _body(req: Request) -> dict[str, t.Any]:
    body = req.json()
    if not isinstance(body, dict):
        raise HttpError(400, "request body must be a JSON object")
    return body


def register(sim: GithubSim, router: Router) -> None:
    world = sim.world

    def post_jobs(req: Request) -> Response:
        body = _body(req)
        repository, labels = body.get("repository"), body.get("labels")
        if not isinstance(repository, str) or "/" not in repository:
            raise HttpError(400, "repository must be 'owner/name'")
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
            raise HttpError(400, "labels must be a non-empty list of strings")
        count = body.get("count", 1)
        if not isinstance(count, int) or count < 1:
            raise HttpError(400, "count must be a positive integer")
        with world.lock:
            duration = float(body.get("duration", world.config["github.default_job_duration"]))
            owner, name = repository.split("/", 1)
            repo = sim.store.repo(owner, name)
            if repo is None:
                raise HttpError(404, f"no repository {repository} in the simulator")
            waiting = float(body.get("waiting", 0))
            name = str(body.get("name", "build"))
            run = sim.store.enqueue(repo, labels, duration, count, name, world.now(), waiting)
            jobs = [sim.store.jobs[j].summary() for j in run.job_ids]
        return Response(201, {"run_id": run.id, "jobs": jobs})

    def get_jobs(req: Request) -> Response:
        status, repository, ident = req.arg("status"), req.arg("repository"), req.arg("id")
        with world.lock:
            if ident is not None:
                one = sim.store.jobs.get(int(ident)) if ident.isdigit() else None
                candidates = [one] if one is not None else []
            else:
                candidates = list(sim.store.jobs.values())
            jobs = [
                job.summary()
                for job in candidates
                if (status is None or job.status == status)
                and (repository is None or job.repo.full_name.lower() == repository.lower())
            ]
        return Response(200, {"jobs": jobs})

    def post_webhooks(req: Request) -> Response:
        body = _body(req)
        url = body.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise HttpError(400, "url must be an http(s) URL")
        secret = body.get("secret", sim.env()["GITHUB_WEBHOOK_SECRET"])
        events = body.get("events", ["workflow_job"])
        with world.lock:
            sub = sim.webhooks.subscribe(url, str(secret), list(events))
        return Response(201, {"id": sub.id, "url": sub.url, "events": sub.events})

    def get_webhooks(req: Request) -> Response:
        with world.lock:
            subs = [{"id": s.id, "url": s.url, "events": s.events} for s in sim.webhooks.subscriptions.values()]
        return Response(200, {"webhooks": subs})

    def delete_webhook(req: Request) -> Response:
        with world.lock:
            try:
                hook_id = int(req.params["hook_id"])
            except ValueError:
                hook_id = -1
            if sim.webhooks.subscriptions.pop(hook_id, None) is None:
                raise HttpError(404, f"no webhook {req.params['hook_id']}")
        return Response(204)

    def redeliver(req: Request) -> Response:
        delivery_id = _body(req).get("delivery_id")
        if not isinstance(delivery_id, int):
            raise HttpError(400, "delivery_id must be an integer")
        with world.lock:
            again = sim.webhooks.redeliver(delivery_id)
            if again is None:
                raise HttpError(404, f"no delivery {delivery_id}")
            return Response(202, again.public())

    def get_deliveries(req: Request) -> Response:
        since = int(req.arg("since") or 0)
        with world.lock:
            found = [d.public() for d in sim.webhooks.deliveries.values() if d.id > since]
            return Response(200, {"deliveries": found, "pending": sim.webhooks.pending})

    def get_validation(req: Request) -> Response:
        validator = sim.validator
        with world.lock:
            validated = [
                {"kind": k, "method": m, "route": r, "status": s, "count": c}
                for (k, m, r, s), c in sim.validated.items()
            ]
            return Response(
                200,
                {
                    "enabled": validator is not None,
                    "version": validator.version if validator is not None else None,
                    "routes": [{"method": m, "route": r} for m, r in sim.service.router.templates()],
                    "validated": validated,
                    "violations": list(sim.violations),
                    "pending": sim.webhooks.pending,
                },
            )

    def post_agent(req: Request) -> Response:
        body = _body(req)
        encoded = body.get("encoded_jit_config")
        if not isinstance(encoded, str):
            raise HttpError(400, "encoded_jit_config must be a string")
        with world.lock:
            agent = sim.agents.start(encoded, str(body.get("name", "")), None)
            return Response(201, agent.public())

    def get_agents(req: Request) -> Response:
        with world.lock:
            return Response(200, {"agents": sim.agents.snapshot()})

    router.add("POST", "/jobs", post_jobs)
    router.add("GET", "/jobs", get_jobs)
    router.add("POST", "/webhooks", post_webhooks)
    router.add("GET", "/webhooks", get_webhooks)
    router.add("DELETE", "/webhooks/{hook_id}", delete_webhook)
    router.add("POST", "/webhooks/redeliver", redeliver)
    router.add("GET", "/deliveries", get_deliveries)
    router.add("GET", "/validation", get_validation)
    router.add("POST", "/runner-agents", post_agent)
    router.add("GET", "/runner-agents", get_agents)

    def get_jit_configs(req: Request) -> Response:
        with world.lock:
            return Response(200, {"jit_configs": list(sim.store.issued_jit_configs)})

    router.add("GET", "/jit-configs", get_jit_configs)

    def post_cloud(req: Request) -> Response:
        body = _body(req)
        auth = body.get("auth")
        name = body.get("name")
        if not isinstance(name, str) or not name or not isinstance(auth, dict):
            raise HttpError(400, "name (a string) and auth (auth_url, username, password, project_name) are required")
        missing = sorted({"auth_url", "username", "password", "project_name"} - set(auth))
        if missing:
            raise HttpError(400, f"auth lacks {', '.join(missing)}")
        try:
            watcher = sim.watch_nova(name, auth, float(body.get("interval", 0.2)), body.get("tags"))
        except (OSError, ValueError, KeyError, StopIteration) as exc:
            raise HttpError(400, f"cannot log in to that cloud: {exc}") from None
        return Response(201, watcher.public())

    def get_clouds(req: Request) -> Response:
        return Response(200, {"clouds": [w.public() for w in sim.watchers.values()]})

    def delete_cloud(req: Request) -> Response:
        if not sim.unwatch_nova(req.params["name"]):
            raise HttpError(404, f"no cloud {req.params['name']}")
        return Response(204)

    # Real Nova clouds whose servers get runner agents (see nova_watch.py).
    router.add("POST", "/clouds", post_cloud)
    router.add("GET", "/clouds", get_clouds)
    router.add("DELETE", "/clouds/{name}", delete_cloud)
