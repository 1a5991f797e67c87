"""Runner VMs on a real Nova: the runner processes start from the user data of its servers.

A real Nova (the test suite's lane runs one with the fake virt driver) boots no guest, so
nothing would ever run the cloud-init script. `NovaWatcher` plays the guests: it lists the
project's servers as an admin (microversion 2.52, so `OS-EXT-SRV-ATTR:user_data` is in the
listing), starts a runner agent from the user data of each server that turns ACTIVE, tells
the agents when their server is being deleted, and carries out the script's power-off as
`os-stop`. It talks to Nova over HTTP only, as any client would.
"""

from __future__ import annotations

import base64
import threading
import typing as t

from tests.sandbox.realnova.client import NovaClient

if t.TYPE_CHECKING:
    from tests.sandbox.github.sim import GithubSim


class NovaWatcher:
    def __init__(
        self,
        sim: GithubSim,
        name: str,
        auth: t.Mapping[str, str],
        interval: float = 0.2,
        tags: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.sim = sim
        self.world = sim.world
        self.name = name
        self.nova = NovaClient(auth, timeout=timeout)
        self.interval = interval
        self.tags = tags
        self.timeout = timeout
        self._stops: list[str] = []
        self._seen: set[str] = set()  # servers whose ACTIVE state was handled
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"nova-watch-{name}", daemon=True)
        self.polls = 0
        self.errors = 0
        self.last_error: str | None = None

    # Life cycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.nova.login()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.timeout + 2)

    def public(self) -> dict[str, t.Any]:
        return {
            "name": self.name,
            "compute_url": self.nova.compute_url,
            "polls": self.polls,
            "errors": self.errors,
            "last_error": self.last_error,
        }

    # The agents' contract (called under world.lock): queue it, the watcher's thread calls Nova.
    def power_off(self, server_id: str) -> None:
        self._stops.append(server_id)

    # The loop -----------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception as exc:  # Nova restarting or slow: try again next time
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"

    def poll(self) -> None:
        """One listing: agents for servers that turned ACTIVE, gone servers told, power-offs made."""
        with self.world.lock:
            stops, self._stops = self._stops, []
        for server_id in stops:
            status, answer = self.nova.request("POST", f"/servers/{server_id}/action", {"os-stop": None})
            if status not in (202, 404):  # 409: being deleted, or already stopped
                self.world.events.add("runner_power_off_failed", server_id=server_id, error=f"HTTP {status}: {answer}")
        servers = self.nova.servers(f"?tags={self.tags}" if self.tags else "")
        self.polls += 1
        agents = self.sim.agents
        with self.world.lock:
            live = {}
            for server in servers:
                server_id = str(server["id"])
                deleting = server["status"] == "DELETED" or server.get("OS-EXT-STS:task_state") == "deleting"
                if not deleting:
                    live[server_id] = server
            for server_id, agent in list(agents.by_server.items()):
                if agent.cloud is self and server_id not in live:
                    # As the sandbox's own Nova logs it: the runner's busy flag when its VM went.
                    busy = self.sim.runner_busy(agent.name)
                    self.world.events.add(
                        "server_delete", id=server_id, name=agent.name, cloud=self.name, runner_busy=busy
                    )
                    agents.on_server_deleted(server_id)
            self._seen &= set(live)
            for server_id, server in live.items():
                if server["status"] == "ACTIVE" and server_id not in self._seen:
                    self._seen.add(server_id)
                    agents.on_server_active(
                        {"id": server_id, "name": server.get("name", ""), "user_data": _decode(server)}, cloud=self
                    )


def _decode(server: t.Mapping[str, t.Any]) -> str | None:
    encoded = server.get("OS-EXT-SRV-ATTR:user_data")
    if not encoded:
        return None
    try:
        return base64.b64decode(encoded).decode("utf-8", "replace")
    except ValueError:
        return None
