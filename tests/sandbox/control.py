"""The sandbox's control API: counters, events, faults, config and state, as JSON over HTTP.

Tests, the demo and benchmarks observe and steer the simulators through it; its own
calls are not counted. The GitHub simulator adds its routes (jobs, webhooks) here.
"""

from __future__ import annotations

import copy
import dataclasses
import typing as t

from tests.sandbox.httpserver import HttpError, Request, Response, Service
from tests.sandbox.world import Fault

if t.TYPE_CHECKING:
    from tests.sandbox.world import World

_FAULT_FIELDS = frozenset(f.name for f in dataclasses.fields(Fault)) - {"id", "fired"}


class ControlService(Service):
    name = "control"
    counted = False

    def __init__(self, world: World) -> None:
        super().__init__(world)
        # Built after the simulators, so these are their defaults (POST /config/reset restores them).
        self.defaults = copy.deepcopy(world.config)
        r = self.router
        r.add("GET", "/counters", self.counters)
        r.add("POST", "/counters/reset", self.reset_counters)
        r.add("GET", "/events", self.events)
        r.add("GET", "/faults", self.list_faults)
        r.add("POST", "/faults", self.add_fault)
        r.add("DELETE", "/faults", self.clear_faults)
        r.add("GET", "/config", self.get_config)
        r.add("POST", "/config", self.set_config)
        r.add("POST", "/config/reset", self.reset_config)
        r.add("GET", "/state", self.state)
        r.add("POST", "/mongodb/kill", self.kill_mongodb)
        r.add("POST", "/mongodb/start", self.start_mongodb)
        github = world.services.get("github")
        if github is not None and hasattr(github, "register_control"):
            github.register_control(self.router)

    def error_response(self, req: Request, status: int, message: str) -> Response:
        return Response(status, {"error": message})

    def counters(self, req: Request) -> Response:
        return Response(200, self.world.counters.snapshot())

    def reset_counters(self, req: Request) -> Response:
        self.world.counters.reset()
        return Response(204)

    def events(self, req: Request) -> Response:
        try:
            since = int(req.arg("since") or 0)
        except ValueError:
            raise HttpError(400, "since must be an integer") from None
        return Response(200, self.world.events.query(since=since, type_=req.arg("type")))

    def list_faults(self, req: Request) -> Response:
        return Response(200, self.world.faults.list())

    def add_fault(self, req: Request) -> Response:
        body = req.json()
        if not isinstance(body, dict) or "kind" not in body:
            raise HttpError(400, "a fault needs at least a kind")
        unknown = sorted(set(body) - _FAULT_FIELDS)
        if unknown:
            raise HttpError(400, f"unknown fault fields: {', '.join(unknown)}")
        try:
            fault = self.world.faults.add(Fault(**body))
        except TypeError as exc:
            raise HttpError(400, str(exc)) from None
        return Response(201, dataclasses.asdict(fault))

    def clear_faults(self, req: Request) -> Response:
        self.world.faults.clear()
        return Response(204)

    def get_config(self, req: Request) -> Response:
        with self.world.lock:
            return Response(200, dict(self.world.config))

    def set_config(self, req: Request) -> Response:
        body = req.json()
        if not isinstance(body, dict):
            raise HttpError(400, "config must be a JSON object")
        with self.world.lock:
            unknown = sorted(set(body) - set(self.world.config))
            if unknown:
                raise HttpError(400, f"unknown config keys: {', '.join(unknown)}")
            self.world.config.update(body)
            return Response(200, dict(self.world.config))

    def reset_config(self, req: Request) -> Response:
        with self.world.lock:
            self.world.config.clear()
            self.world.config.update(copy.deepcopy(self.defaults))
            return Response(200, dict(self.world.config))

    def _mongodb(self) -> t.Any:
        mongo = self.world.services.get("mongodb")
        if mongo is None or not mongo.restartable:
            raise HttpError(404, "no MongoDB server started by the sandbox")
        return mongo

    def kill_mongodb(self, req: Request) -> Response:
        """SIGKILL the MongoDB server (its data stays); clients see connection errors until /mongodb/start."""
        killed = self._mongodb().kill()
        self.world.events.add("mongodb_killed", was_running=killed)
        return Response(200, {"killed": killed})

    def start_mongodb(self, req: Request) -> Response:
        """Start the killed MongoDB server again on the same port and data; returns once it answers."""
        started = self._mongodb().start_again()
        self.world.events.add("mongodb_started", was_down=started)
        return Response(200, {"started": started})

    def state(self, req: Request) -> Response:
        body = {}
        for name, sim in list(self.world.services.items()):
            if hasattr(sim, "state"):
                body[name] = sim.state()
        return Response(200, body)
