"""The runner process inside a simulated VM.

When the OpenStack simulator reports a server ACTIVE, its user data is read (never
executed) the way the collection's cloud-init script hands the JIT config over:
find the `run.sh ... --jitconfig "${VAR}"` invocation, then VAR's single-quoted
assignment. After `runner.start_delay` the runner connects to the GitHub simulator
with that config. From then on it behaves as an ephemeral JIT runner: takes one job,
is removed by GitHub when the job completes, and the script powers the VM off.

Faults (world.faults, domain kinds, `match` on name and/or server_id):
  runner_never_online     the runner never connects (the VM stays ACTIVE)
  runner_offline_mid_job  the runner stops talking to GitHub while busy: the job stays
                          in progress until github.lost_job_timeout, then fails; the
                          runner stays registered (offline) and the VM stays up (lost)
"""

from __future__ import annotations

import dataclasses
import re
import typing as t

from tests.sandbox.github.model import Job, Runner

if t.TYPE_CHECKING:
    from tests.sandbox.github.sim import GithubSim

_LIVE = frozenset({"booting", "online", "busy"})  # states in which the VM's fate matters to GitHub
_INVOCATION = re.compile(r"""run\.sh["']?[ \t]+[^\n]*?--jitconfig(?:=|[ \t]+)"?\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?"?""")


def _in_comment(text: str, pos: int) -> bool:
    line_start = text.rfind("\n", 0, pos) + 1
    return text[line_start:pos].lstrip().startswith("#")


def find_jit_config(user_data: str | None) -> tuple[str | None, str | None]:
    """(encoded config, None) from a cloud-init script, or (None, why it has none)."""
    if not user_data:
        return None, "no user data"
    call = next((m for m in _INVOCATION.finditer(user_data) if not _in_comment(user_data, m.start())), None)
    if call is None:
        return None, "no run.sh --jitconfig invocation"
    var = call.group(1)
    assignment = re.compile(
        rf"^[ \t]*(?:export[ \t]+|readonly[ \t]+|declare[ \t]+-r[ \t]+)?{var}='([^']*)'[ \t]*$", re.M
    )
    values = [m.group(1) for m in assignment.finditer(user_data, 0, call.start())]
    if not values:
        return None, f"no single-quoted assignment of {var} before run.sh"
    return values[-1], None


@dataclasses.dataclass(eq=False)
class Agent:
    name: str
    jit_config: str
    server_id: str | None
    state: str = "booting"  # booting, online, busy, exited, rejected, never_online, lost, gone
    runner: Runner | None = None
    reason: str | None = None
    cloud: t.Any = None  # whose power_off(server_id) the script's power-off is; None = the sandbox's Nova

    def public(self) -> dict[str, t.Any]:
        return {
            "name": self.name,
            "server_id": self.server_id,
            "state": self.state,
            "runner_id": self.runner.id if self.runner else None,
            "reason": self.reason,
        }


class RunnerAgents:
    """Every simulated runner process; the GitHub state calls back on job start and runner removal."""

    def __init__(self, sim: GithubSim) -> None:
        self.sim = sim
        self.world = sim.world
        self.agents: list[Agent] = []
        self.by_server: dict[str, Agent] = {}
        self.by_runner: dict[int, Agent] = {}
        self._next_poll = 0.0

    # Start-up -----------------------------------------------------------------------------
    def on_server_active(self, server: dict[str, t.Any], cloud: t.Any = None) -> None:
        """OpenStack hook (called under world.lock) when a server becomes ACTIVE (`cloud`: a real Nova's watcher)."""
        server_id, name = str(server["id"]), str(server.get("name", ""))
        if server_id in self.by_server:
            return  # a reboot: the runner process is already accounted for
        encoded, why = find_jit_config(server.get("user_data"))
        if encoded is None:
            self.world.events.add("runner_agent_skipped", server_id=server_id, name=name, reason=why)
            return
        self.start(encoded, name, server_id, cloud)

    def start(self, jit_config: str, name: str, server_id: str | None = None, cloud: t.Any = None) -> Agent:
        agent = Agent(name, jit_config, server_id, cloud=cloud)
        self.agents.append(agent)
        if server_id is not None:
            self.by_server[server_id] = agent
        delay = float(self.world.config["runner.start_delay"])
        self.sim.store.schedule(self.world.now() + delay, lambda now: self._connect(agent, now))
        return agent

    def _connect(self, agent: Agent, now: float) -> None:
        if agent.state != "booting":
            return
        if self.world.faults.take("runner_never_online", name=agent.name, server_id=agent.server_id) is not None:
            agent.state = "never_online"
            self.world.events.add("runner_never_online", name=agent.name, server_id=agent.server_id)
            return
        runner, reason = self.sim.store.connect_runner(agent.jit_config, now)
        if runner is None:
            agent.state, agent.reason = "rejected", reason
            self.world.events.add("runner_jit_rejected", name=agent.name, server_id=agent.server_id, reason=reason)
            self._exit(agent)  # run.sh fails; the script powers the VM off
            return
        agent.runner = runner
        agent.state = "online"
        self.by_runner[runner.id] = agent
        idle_timeout = float(self.world.config["runner.idle_timeout"])
        if idle_timeout > 0:
            self.sim.store.schedule(now + idle_timeout, lambda at: self._idle_timeout(agent, at))

    def _idle_timeout(self, agent: Agent, now: float) -> None:
        if agent.state == "online" and agent.runner is not None:
            self.sim.store.runner_offline(agent.runner, "idle_timeout", now)
            self._exit(agent)

    # GitHub callbacks (RunnerHooks) ----------------------------------------------------------
    def on_job_started(self, runner: Runner, job: Job) -> None:
        agent = self.by_runner.get(runner.id)
        if agent is None:
            return
        agent.state = "busy"
        if self.world.faults.take("runner_offline_mid_job", name=agent.name, server_id=agent.server_id) is not None:
            at = self.world.now() + job.duration * float(self.world.config["runner.offline_after"])
            self.sim.store.schedule(at, lambda now: self._lose(agent, now))

    def _lose(self, agent: Agent, now: float) -> None:
        if agent.state == "busy" and agent.runner is not None:
            agent.state = "lost"
            self.sim.store.runner_offline(agent.runner, "lost_mid_job", now)

    def on_runner_finished(self, runner: Runner) -> None:
        agent = self.by_runner.get(runner.id)
        if agent is not None and agent.state == "busy":
            self._exit(agent)  # ephemeral: the runner exits after its job; the script powers off

    def on_runner_deleted(self, runner: Runner) -> None:
        agent = self.by_runner.get(runner.id)
        if agent is not None and agent.state == "online":
            # The runner learns its registration is gone and exits; the script powers off.
            self.sim.store.runner_offline(runner, "deleted", self.world.now())
            self._exit(agent)

    def on_server_deleted(self, server: dict[str, t.Any] | str) -> None:
        """OpenStack hook: the VM is gone, and the runner process with it."""
        server_id = str(server["id"]) if isinstance(server, dict) else str(server)
        agent = self.by_server.pop(server_id, None)
        if agent is None:
            return
        previous, agent.state = agent.state, "gone"
        if agent.runner is not None and previous in ("online", "busy"):
            self.sim.store.runner_offline(agent.runner, "vm_deleted", self.world.now())

    def poll_deleted(self, openstack: t.Any, now: float) -> None:
        """Notice deleted VMs by listing servers, for an OpenStack simulator without a delete hook."""
        if now < self._next_poll:
            return
        self._next_poll = now + float(self.world.config["runner.vm_poll_interval"])
        live = [sid for sid, agent in self.by_server.items() if agent.state in _LIVE and agent.cloud is None]
        if not live:
            return
        present = {str(s["id"]) for s in openstack.servers_snapshot() if s.get("status") != "DELETED"}
        for server_id in live:
            if server_id not in present:
                self.on_server_deleted(server_id)

    def _exit(self, agent: Agent) -> None:
        agent.state = "exited" if agent.state not in ("rejected",) else agent.state
        if agent.server_id is None:
            return
        openstack = agent.cloud or self.world.services.get("openstack")
        if openstack is not None:
            try:
                openstack.power_off(agent.server_id)
            except Exception as exc:  # the VM may already be gone; the sandbox keeps going
                self.world.events.add("runner_power_off_failed", server_id=agent.server_id, error=str(exc))

    def snapshot(self) -> list[dict[str, t.Any]]:
        return [a.public() for a in self.agents]
