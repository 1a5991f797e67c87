"""Unmodified Nova in one process, on a loopback port, for the test suite's real-Nova lane.

Runs under the Nova virtual environment's Python (see scripts/install-nova.sh), not the
project's: it imports Nova and the standard library only.

Nova's own functional-test harness starts the API, conductor, scheduler and one compute
service (the fake virt driver) with an in-memory database, Placement in process, and
Nova's in-process Glance and Neutron fixtures. RPC casts stay casts, so builds and
deletes are asynchronous as in a deployment. In front of the API sits what a deployment
has around it and the harness leaves out:

- a small Keystone v3 under /identity (password auth, a token with a catalog whose only
  service is this compute endpoint); every other request needs a token it issued, which
  becomes the user, project and roles of Nova's request context;
- counters of the compute API calls under /_control (not counted themselves).

Usage: python server.py --port-file FILE [--port N]. Writes {"url", "pid", ...} to the
port file once the API answers, and runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import re
import secrets
import signal
import sys
import threading
import time
import uuid

import eventlet
from nova.tests import fixtures as nova_fixtures
from nova.tests.functional import integrated_helpers

PROJECT_ID = nova_fixtures.PROJECT_ID
PROJECT_NAME = "runners"
# user -> (password, roles); the user id "admin" is what makes Nova's context is_admin.
USERS = {
    "runner": ("runner-password", ["reader", "member"]),
    "admin": ("admin-password", ["reader", "member", "admin"]),
}
#: Flavors the suite uses besides Nova's defaults (m1.tiny ... m1.xlarge, ids 1-5).
#: m1.unschedulable asks for a resource no compute node has: every boot ends in NoValidHost.
EXTRA_FLAVORS = [
    {
        "name": "m1.unschedulable",
        "id": "90",
        "ram": 512,
        "vcpus": 1,
        "disk": 1,
        "extra_specs": {"resources:CUSTOM_UNSCHEDULABLE": "1"},
    },
]
#: Project quotas at start (Nova's defaults are 10 instances, 20 cores, 50 GiB RAM).
QUOTAS = {"instances": 40, "cores": -1, "ram": -1}
_ID = re.compile(r"^[0-9a-fA-F-]{32,36}$")


class RealNova(integrated_helpers._IntegratedTestBase):
    """The harness of Nova's functional tests, used as a long-running service."""

    CAST_AS_CALL = False  # builds and deletes run asynchronously, as in a deployment
    REQUIRES_LOCKING = True
    compute_driver = "fake.FakeDriver"

    def setUp(self) -> None:
        self.flags(compute_driver=self.compute_driver)
        self.flags(api_paste_config=os.path.join(sys.prefix, "etc", "nova", "api-paste.ini"), group="wsgi")
        super().setUp()

    def runTest(self) -> None:  # testtools wants a test method; the service has none
        pass


def _isotime(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _json(start_response, status: str, body: object, headers: list | None = None) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))] + (headers or []))
    return [data]


def _route(path: str) -> str:
    """A compute request path as a route template: /v2.1/servers/<uuid>/action -> /servers/{server_id}/action."""
    parts = path.split("/")
    if parts[1:2] == ["v2.1"]:
        parts = ["", *parts[2:]]
    named = {"servers": "{server_id}", "flavors": "{flavor_id}", "os-quota-sets": "{project_id}",
             "tags": "{tag}", "os-keypairs": "{name}", "metadata": "{key}"}  # fmt: skip
    out = list(parts)
    for i in range(1, len(parts)):
        previous = parts[i - 1]
        if previous in named and parts[i] and parts[i] != "detail" and (_ID.match(parts[i]) or previous != "servers"):
            out[i] = named[previous]
    return "/".join(out).rstrip("/") or "/"


class Front:
    """Keystone, token check and counters in front of Nova's WSGI application."""

    def __init__(self, nova_app, base_url: str) -> None:
        self.nova_app = nova_app
        self.base_url = base_url
        self.tokens: dict[str, dict] = {}
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/identity"):
            return self.keystone(environ, start_response, path[len("/identity") :] or "/")
        if path.startswith("/_control"):
            return self.control(environ, start_response, path[len("/_control") :])
        if "HTTP_X_SANDBOX_OBSERVER" not in environ:  # the test suite's own looks are not counted
            with self.lock:
                self.counts[(environ["REQUEST_METHOD"], _route(path))] += 1
        if path.rstrip("/") not in ("", "/v2.1"):  # version documents need no token
            token = self.tokens.get(environ.get("HTTP_X_AUTH_TOKEN", ""))
            if token is None:
                message = "The request you have made requires authentication."
                return _json(start_response, "401 Unauthorized",
                             {"error": {"code": 401, "title": "Unauthorized", "message": message}},
                             [("WWW-Authenticate", f'Keystone uri="{self.base_url}/identity/v3"')])  # fmt: skip
            environ["HTTP_X_AUTH_USER"] = token["user"]
            environ["HTTP_X_USER_ID"] = token["user"]
            environ["HTTP_X_AUTH_PROJECT_ID"] = PROJECT_ID
            environ["HTTP_X_PROJECT_ID"] = PROJECT_ID
            environ["HTTP_X_ROLES"] = ",".join(token["roles"])
        return self.nova_app(environ, start_response)

    # Keystone v3 ------------------------------------------------------------------------
    def _version(self) -> dict:
        return {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
                "links": [{"rel": "self", "href": f"{self.base_url}/identity/v3/"}],
                "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]}  # fmt: skip

    def keystone(self, environ, start_response, path: str):
        method = environ["REQUEST_METHOD"]
        if method == "GET" and path.rstrip("/") == "":
            return _json(start_response, "300 Multiple Choices", {"versions": {"values": [self._version()]}})
        if method == "GET" and path.rstrip("/") == "/v3":
            return _json(start_response, "200 OK", {"version": self._version()})
        if method == "POST" and path.rstrip("/") == "/v3/auth/tokens":
            return self.authenticate(environ, start_response)
        return _json(start_response, "404 Not Found", {"error": {"code": 404, "title": "Not Found",
                                                                 "message": "The resource could not be found."}})  # fmt: skip

    def authenticate(self, environ, start_response):
        try:
            body = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)) or b"{}")
            user = body["auth"]["identity"]["password"]["user"]
            name, password = user.get("name") or user.get("id"), user["password"]
        except (ValueError, KeyError, TypeError):
            return _json(start_response, "400 Bad Request", {"error": {"code": 400, "title": "Bad Request",
                                                                       "message": "Malformed authentication request."}})  # fmt: skip
        if USERS.get(name, (None,))[0] != password:
            return _json(start_response, "401 Unauthorized", {"error": {"code": 401, "title": "Unauthorized",
                                                                        "message": "The request you have made requires authentication."}})  # fmt: skip
        roles = USERS[name][1]
        token_id = "gAAAAA" + secrets.token_urlsafe(64)
        self.tokens[token_id] = {"user": name, "roles": roles}
        now = time.time()
        endpoint = {"region": "RegionOne", "region_id": "RegionOne", "url": f"{self.base_url}/v2.1"}
        token = {
            "methods": ["password"],
            "user": {"id": name, "name": name, "domain": {"id": "default", "name": "Default"}, "password_expires_at": None},
            "project": {"id": PROJECT_ID, "name": PROJECT_NAME, "domain": {"id": "default", "name": "Default"}},
            "roles": [{"id": uuid.uuid5(uuid.NAMESPACE_OID, r).hex, "name": r} for r in roles],
            "audit_ids": [secrets.token_urlsafe(16)[:22]],
            "issued_at": _isotime(now),
            "expires_at": _isotime(now + 3600),
            "is_domain": False,
            "catalog": [
                {"type": "compute", "name": "nova", "id": uuid.uuid5(uuid.NAMESPACE_OID, "nova").hex,
                 "endpoints": [{"id": uuid.uuid5(uuid.NAMESPACE_OID, f"nova-{i}").hex, "interface": i, **endpoint}
                               for i in ("public", "internal")]},
                {"type": "identity", "name": "keystone", "id": uuid.uuid5(uuid.NAMESPACE_OID, "keystone").hex,
                 "endpoints": [{"id": uuid.uuid5(uuid.NAMESPACE_OID, f"keystone-{i}").hex, "interface": i,
                                **endpoint, "url": f"{self.base_url}/identity/v3"} for i in ("public", "internal")]},
            ],
        }  # fmt: skip
        return _json(start_response, "201 Created", {"token": token}, [("X-Subject-Token", token_id)])

    # Control ----------------------------------------------------------------------------
    def control(self, environ, start_response, path: str):
        method = environ["REQUEST_METHOD"]
        if method == "GET" and path == "/counters":
            with self.lock:
                items = [{"service": "nova", "method": m, "route": r, "count": n} for (m, r), n in self.counts.items()]
            return _json(start_response, "200 OK", sorted(items, key=lambda c: (c["route"], c["method"])))
        if method == "POST" and path == "/counters/reset":
            with self.lock:
                self.counts.clear()
            start_response("204 No Content", [])
            return []
        return _json(start_response, "404 Not Found", {"error": f"no control route {method} {path}"})


def _setup_cloud(case: RealNova) -> None:
    """What an operator would have set up: the suite's extra flavors and the project quotas."""
    admin = case.api_fixture.admin_api
    admin.microversion = "2.61"
    for flavor in EXTRA_FLAVORS:
        spec = {k: flavor[k] for k in ("name", "id", "ram", "vcpus", "disk")}
        admin.api_post("/flavors", {"flavor": spec})
        admin.api_post(f"/flavors/{flavor['id']}/os-extra_specs", {"extra_specs": flavor["extra_specs"]})
    admin.api_put(f"/os-quota-sets/{PROJECT_ID}", {"quota_set": QUOTAS})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--parent-pid", type=int, help="stop when this process is gone (the test session)")
    args = parser.parse_args()

    started = time.monotonic()
    case = RealNova()
    case.setUp()
    _setup_cloud(case)
    sock = eventlet.listen(("127.0.0.1", args.port))
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    front = Front(case.api_fixture.app(), base_url)

    stop = eventlet.event.Event()

    def on_signal(*_args) -> None:
        if not stop.ready():
            stop.send()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)

    def watch_parent() -> None:
        # A test session killed before it could stop us must not leave Nova running.
        while not stop.ready():
            if args.parent_pid and not os.path.exists(f"/proc/{args.parent_pid}"):
                on_signal()
            eventlet.sleep(1.0)

    eventlet.spawn(watch_parent)
    from eventlet import wsgi

    log = open(os.devnull, "w")  # noqa: SIM115 - open for the server's life
    server = eventlet.spawn(wsgi.server, sock, front, log=log, log_output=False)
    info = {
        "url": base_url,
        "auth_url": f"{base_url}/identity/v3",
        "compute_url": f"{base_url}/v2.1",
        "pid": os.getpid(),
        "project_id": PROJECT_ID,
        "project_name": PROJECT_NAME,
        "users": {name: password for name, (password, _roles) in USERS.items()},
        "image_id": nova_fixtures.GlanceFixture.image1["id"],
        "network_id": nova_fixtures.NeutronFixture.network_1["id"],
        "started_in": round(time.monotonic() - started, 2),
    }
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(info, handle)
    os.replace(tmp, args.port_file)
    print(f"realnova: listening at {base_url} after {info['started_in']}s", flush=True)
    stop.wait()
    server.kill()
    case.doCleanups()
    return 0


if __name__ == "__main__":
    sys.exit(main())
