"""A minimal compute API client over the standard library, for observers of a real Nova.

The runner agents' watcher and the test suite's views of the cloud use it, not the
collection's code paths. Its requests carry `X-Sandbox-Observer`, which the real-Nova
front (server.py) leaves out of its call counters: the counters are the collection's calls.
"""

from __future__ import annotations

import json
import typing as t
import urllib.error
import urllib.request

OBSERVER_HEADER = "X-Sandbox-Observer"
MICROVERSION = "2.52"  # >= 2.3: admins see OS-EXT-SRV-ATTR:user_data; >= 2.26: tags


class NovaClient:
    def __init__(self, auth: t.Mapping[str, str], timeout: float = 10.0, microversion: str = MICROVERSION) -> None:
        self.auth = dict(auth)
        self.timeout = timeout
        self.microversion = microversion
        self.token: str | None = None
        self.compute_url: str | None = None
        self.project_id: str | None = None

    def login(self) -> None:
        """Keystone v3 password auth scoped to the project; the compute endpoint from the catalog."""
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": self.auth["username"],
                            "password": self.auth["password"],
                            "domain": {"name": "Default"},
                        }
                    },
                },
                "scope": {"project": {"name": self.auth["project_name"], "domain": {"name": "Default"}}},
            }
        }
        url = self.auth["auth_url"].rstrip("/") + "/auth/tokens"
        req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            self.token = resp.headers["X-Subject-Token"]
            token = json.load(resp)["token"]
        compute = next(s for s in token["catalog"] if s["type"] == "compute")
        self.compute_url = next(e["url"] for e in compute["endpoints"] if e["interface"] == "public")
        self.project_id = token["project"]["id"]

    def request(self, method: str, path: str, body: t.Any = None) -> tuple[int, t.Any]:
        """(status, JSON body or text); logs in again once when the token is refused."""
        if self.token is None:
            self.login()
        for attempt in (1, 2):
            headers = {
                "X-Auth-Token": self.token or "",
                "OpenStack-API-Version": f"compute {self.microversion}",
                "Content-Type": "application/json",
                OBSERVER_HEADER: "1",
            }
            data = None if body is None else json.dumps(body).encode()
            req = urllib.request.Request(f"{self.compute_url}{path}", data, headers, method=method)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    raw = resp.read()
                    return resp.status, json.loads(raw) if raw else None
            except urllib.error.HTTPError as exc:
                text = exc.read().decode(errors="replace")
                if exc.code == 401 and attempt == 1:
                    self.login()
                    continue
                return exc.code, text
        raise AssertionError("unreachable")

    def servers(self, query: str = "") -> list[dict[str, t.Any]]:
        status, answer = self.request("GET", f"/servers/detail{query}")
        if status != 200:
            raise RuntimeError(f"GET /servers/detail{query}: HTTP {status}: {answer}")
        return t.cast(list[dict[str, t.Any]], answer["servers"])
