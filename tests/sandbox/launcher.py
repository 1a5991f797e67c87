"""Start and stop the whole sandbox: simulators, control API and MongoDB, in one process.

`serve` runs everything in the foreground until SIGTERM/SIGINT. `up` starts `serve` as a
detached process and returns once the control API answers; `down` stops it and leaves no
process behind. Files in the sandbox directory:

- clouds.yaml            clouds "sandbox" (password) and "sandbox-appcred" (application credential)
- env                    KEY=VALUE lines for a shell (`set -a; . DIR/env; set +a`) or a test
- app-private-key.pem    the GitHub App key (0600), when the GitHub simulator provides one
- sandbox.pid, ready     the serving process id; written once everything answers
- sandbox.log            output of the detached process (FerretDB logs to ferretdb.log)
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import pathlib
import shlex
import signal
import subprocess
import sys
import threading
import time
import typing as t
import urllib.request

import yaml

from tests.sandbox.control import ControlService
from tests.sandbox.httpserver import RunningServer, serve
from tests.sandbox.openstack import CLOUD, OpenStackSim
from tests.sandbox.world import World

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
ENV_KEYS = (
    "OS_CLIENT_CONFIG_FILE",
    "OS_CLOUD",
    "GITHUB_API_URL",
    "GITHUB_TOKEN",
    "GITHUB_APP_ID",
    "GITHUB_APP_PRIVATE_KEY_FILE",
    "GITHUB_APP_INSTALLATION_ID",
    "GITHUB_WEBHOOK_SECRET",
    "GITHUB_REPOSITORY",
    "GITHUB_ORG",
    "MONGODB_URI",
    "SANDBOX_CONTROL_URL",
)
PID_FILE, READY_FILE, ENV_FILE, LOG_FILE = "sandbox.pid", "ready", "env", "sandbox.log"
CHILDREN_FILE = "children.pid"  # processes the sandbox started in their own session (FerretDB)


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _write_private(path: pathlib.Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


class _MongoStarter(threading.Thread):
    """Starts MongoDB (FerretDB can take a moment) while the simulators come up."""

    def __init__(self, workdir: pathlib.Path) -> None:
        super().__init__(name="mongodb-start", daemon=True)
        self.workdir = workdir
        self.server: t.Any = None
        self.error: str | None = None

    def run(self) -> None:
        from tests.sandbox.mongo import start_mongodb

        try:
            self.server = start_mongodb(self.workdir)
        except Exception as exc:  # reported in the env file; the simulators still run
            self.error = f"{type(exc).__name__}: {exc}"


@dataclasses.dataclass
class Sandbox:
    """A running sandbox in this process."""

    workdir: pathlib.Path
    world: World
    openstack: OpenStackSim
    github: t.Any
    servers: list[RunningServer]
    control_url: str
    env: dict[str, str]
    notes: list[str]
    mongo: t.Any = None

    def stop(self) -> None:
        self.world.stop()
        for server in self.servers:
            server.stop()
        if self.github is not None and hasattr(self.github, "stop"):
            self.github.stop()
        if self.mongo is not None:
            self.mongo.stop()


def start(workdir: pathlib.Path, seed: int = 0, mongodb: bool = True) -> Sandbox:
    """Start every simulator, the control API and MongoDB; write clouds.yaml and env."""
    workdir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    mongo_starter = None
    if not mongodb:
        notes.append("MongoDB: not started (--without-mongodb)")
    elif not _available("tests.sandbox.mongo"):
        notes.append("MongoDB: not started (tests/sandbox/mongo.py is not available)")
    else:
        mongo_starter = _MongoStarter(workdir)
        mongo_starter.start()

    world = World(seed=seed)
    openstack = OpenStackSim(world)
    servers = [serve(s) for s in openstack.services()]
    openstack.started()
    github = None
    github_env: dict[str, str] = {}
    if _available("tests.sandbox.github"):
        from tests.sandbox.github import GithubSim

        github = GithubSim(world, seed=seed)
        servers += [serve(s) for s in github.services()]
        github_env = github.env()
    else:
        notes.append("GitHub: simulator not available (tests/sandbox/github is missing)")
    control = serve(ControlService(world))
    servers.append(control)
    world.start()

    mongo = None
    if mongo_starter is not None:
        mongo_starter.join()
        mongo = mongo_starter.server
        if mongo is not None:
            world.services["mongodb"] = mongo  # the control API's POST /mongodb/kill and /mongodb/start
        if mongo_starter.error:
            notes.append(f"MongoDB: failed to start: {mongo_starter.error}")

    clouds = workdir / "clouds.yaml"
    _write_private(clouds, yaml.safe_dump(openstack.clouds(), sort_keys=False))
    env = {key: "" for key in ENV_KEYS}
    env.update(OS_CLIENT_CONFIG_FILE=str(clouds), OS_CLOUD=CLOUD, SANDBOX_CONTROL_URL=control.url)
    env["MONGODB_URI"] = mongo.uri if mongo is not None else ""
    pem = github_env.pop("GITHUB_APP_PRIVATE_KEY", None)
    if pem:
        key_file = workdir / "app-private-key.pem"
        _write_private(key_file, pem)
        github_env.setdefault("GITHUB_APP_PRIVATE_KEY_FILE", str(key_file))
    env.update(github_env)
    lines = [f"# {note}" for note in notes] + [f"{k}={shlex.quote(v)}" for k, v in env.items()]
    _write_private(workdir / ENV_FILE, "\n".join(lines) + "\n")
    return Sandbox(workdir, world, openstack, github, servers, control.url, env, notes, mongo)


def read_env(workdir: pathlib.Path) -> dict[str, str]:
    """The env file as a dict (comments skipped, shell quoting undone)."""
    env = {}
    for line in (workdir / ENV_FILE).read_text().splitlines():
        if line and not line.startswith("#"):
            key, _eq, value = line.partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env


# Foreground process -------------------------------------------------------------------
def serve_forever(workdir: pathlib.Path, seed: int = 0, mongodb: bool = True) -> int:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / READY_FILE).unlink(missing_ok=True)
    (workdir / PID_FILE).write_text(f"{os.getpid()}\n")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    sandbox = start(workdir, seed, mongodb)
    try:
        process = getattr(sandbox.mongo, "process", None)
        if process is not None:
            (workdir / CHILDREN_FILE).write_text(f"{process.pid}\n")
            sandbox.mongo.pid_file = workdir / CHILDREN_FILE  # kept current when the control API restarts it
        (workdir / READY_FILE).write_text(json.dumps({"pid": os.getpid(), "control_url": sandbox.control_url}) + "\n")
        for note in sandbox.notes:
            print(f"sandbox: {note}", file=sys.stderr, flush=True)
        print(f"sandbox: ready, control API at {sandbox.control_url}", flush=True)
        while not stop.wait(1.0):
            pass
    finally:
        sandbox.stop()
        for name in (READY_FILE, PID_FILE, CHILDREN_FILE):
            (workdir / name).unlink(missing_ok=True)
    return 0


# Background process -------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def _mentions(pid: int, text: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return text.encode() in handle.read()
    except OSError:
        return False


def running_pid(workdir: pathlib.Path) -> int | None:
    try:
        pid = int((workdir / PID_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/config", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def up(
    workdir: pathlib.Path, seed: int = 0, timeout: float = 300.0, mongodb: bool = True
) -> subprocess.Popen[bytes] | None:
    """Start `serve` detached; return once the control API answers (None if it already ran)."""
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if running_pid(workdir) is not None:
        return None
    for name in (READY_FILE, PID_FILE):
        (workdir / name).unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "tests.sandbox", "serve", "--dir", str(workdir), "--seed", str(seed)]
    if not mongodb:
        cmd.append("--without-mongodb")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    with open(workdir / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the sandbox exited with code {proc.returncode}:\n{_log_tail(workdir)}")
        if (workdir / READY_FILE).exists():
            url = read_env(workdir)["SANDBOX_CONTROL_URL"]
            if _answers(url):
                return proc
        time.sleep(0.02)
    _terminate(proc.pid, proc, 5.0)
    raise RuntimeError(f"the sandbox did not answer within {timeout:.0f}s:\n{_log_tail(workdir)}")


def _log_tail(workdir: pathlib.Path, lines: int = 30) -> str:
    try:
        return "\n".join((workdir / LOG_FILE).read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _terminate(pid: int, proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    try:
        group = os.getpgid(pid)
    except ProcessLookupError:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        if proc is None and not _alive(pid):
            break
        time.sleep(0.05)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if proc is not None:
            proc.wait(timeout=5)
    if group == pid:
        # The detached sandbox leads its own process group: sweep what it started (FerretDB).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)


def down(workdir: pathlib.Path, timeout: float = 15.0, proc: subprocess.Popen[bytes] | None = None) -> bool:
    """Stop the sandbox of `workdir`; True if one was running."""
    workdir = workdir.resolve()
    pid = proc.pid if proc is not None else running_pid(workdir)
    was_running = pid is not None and _alive(pid)
    if pid is not None:
        _terminate(pid, proc, timeout)
    # Normally the sandbox stopped them itself; after a crash or a SIGKILL they are left over.
    try:
        children = [int(p) for p in (workdir / CHILDREN_FILE).read_text().split()]
    except (FileNotFoundError, ValueError):
        children = []
    for child in children:
        if _alive(child) and _mentions(child, str(workdir)):  # not a recycled pid
            _terminate(child, None, 5.0)
    for name in (READY_FILE, PID_FILE, CHILDREN_FILE):
        (workdir / name).unlink(missing_ok=True)
    return was_running


def status(workdir: pathlib.Path) -> dict[str, t.Any]:
    workdir = workdir.resolve()
    pid = running_pid(workdir)
    info: dict[str, t.Any] = {"running": pid is not None, "pid": pid, "dir": str(workdir)}
    if pid is not None and (workdir / ENV_FILE).exists():
        env = read_env(workdir)
        info["answers"] = _answers(env["SANDBOX_CONTROL_URL"])
        info["env"] = env
    return info
