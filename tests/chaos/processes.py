"""The processes a chaos run keeps alive and SIGKILLs: one `ProcessKind` per kind of process.

A kind says how to start replica `i` (its command line, with its configuration written
into its directory) and whether it is a one-shot job started again after each exit (a
scheduled reconcile) or a service started again after a crash (the webhook router).
`Supervisor` runs the replicas of a kind, logs every run to its own files, and kills one
on request.

Adding a kind is one entry in `KINDS` (the reactive consumer is one: its command writes
its configuration with `run.consumer_config`). The schedule then kills it like the others
(its kills are drawn per kind and replica), its logs are scanned for secrets, and the
invariants, read from the simulators, cover what it does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import random
import subprocess
import sys
import threading
import time
import typing as t

ROOT = pathlib.Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / ".venv" / "collections"
POOL_MODULE = ROOT / "plugins" / "modules" / "github_runner_pool.py"
ROUTER_MODULE = "ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.router_service"
CONSUMER_MODULE = "ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.consumer_service"
# Whether the pool module sizes pools for the job queue and backfills it (its `job_queue` options).

Command = t.Callable[[t.Any, int, pathlib.Path], t.List[str]]


def python_env(extra: t.Optional[t.Mapping[str, str]] = None) -> t.Dict[str, str]:
    """The environment of every process: the collection importable, nothing from a proxy, then `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["PYTHONPATH"] = os.pathsep.join([str(COLLECTIONS), str(ROOT)])
    env.update(extra or {})
    return env


def reconcile_command(run: t.Any, replica: int, workdir: pathlib.Path) -> t.List[str]:
    """The pool module run as Ansible runs it: the module file with its arguments in a JSON file."""
    args = workdir / "args.json"
    fd = os.open(args, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds the token
    with os.fdopen(fd, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": run.module_args()}, handle)
    return [sys.executable, str(POOL_MODULE), str(args)]


def router_command(run: t.Any, replica: int, workdir: pathlib.Path) -> t.List[str]:
    config = run.router_config(replica, workdir)
    return [sys.executable, "-m", ROUTER_MODULE, "--config", str(config)]


def consumer_command(run: t.Any, replica: int, workdir: pathlib.Path) -> t.List[str]:
    config = run.consumer_config(replica, workdir)
    return [sys.executable, "-m", CONSUMER_MODULE, "--config", str(config)]


@dataclasses.dataclass(frozen=True)
class ProcessKind:
    name: str
    replicas: int
    oneshot: bool  # True: runs to its end and is started again; False: a service, started again after a kill
    command: Command
    pause: t.Tuple[float, float] = (0.2, 1.0)  # seconds between two runs of a replica


KINDS: t.Dict[str, ProcessKind] = {
    "reconcile": ProcessKind("reconcile", replicas=2, oneshot=True, command=reconcile_command),
    "router": ProcessKind("router", replicas=1, oneshot=False, command=router_command, pause=(0.3, 0.6)),
    "consumer": ProcessKind("consumer", replicas=2, oneshot=False, command=consumer_command, pause=(0.3, 0.6)),
}


@dataclasses.dataclass
class RunRecord:
    kind: str
    replica: int
    number: int
    started: float
    out: pathlib.Path
    err: pathlib.Path
    returncode: t.Optional[int] = None
    killed: bool = False


class Supervisor:
    """Keeps the replicas of one kind running until `stop`; `kill` SIGKILLs one at once."""

    def __init__(self, kind: ProcessKind, run: t.Any, logdir: pathlib.Path, seed: int) -> None:
        self.kind = kind
        self.run = run
        self.logdir = logdir
        self.rng = random.Random(seed)  # pauses only: timing, not part of the schedule
        self.records: t.List[RunRecord] = []
        self._procs: t.Dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: t.List[threading.Thread] = []
        self._numbers = [0] * kind.replicas

    def start(self) -> None:
        for replica in range(self.kind.replicas):
            thread = threading.Thread(
                target=self._loop, args=(replica,), name=f"{self.kind.name}-{replica}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _spawn(self, replica: int) -> t.Tuple[subprocess.Popen[bytes], RunRecord]:
        self._numbers[replica] += 1
        number = self._numbers[replica]
        workdir = self.logdir / f"{self.kind.name}-{replica}"
        workdir.mkdir(parents=True, exist_ok=True)
        command = self.kind.command(self.run, replica, workdir)
        stem = workdir / f"run-{number:05d}"
        record = RunRecord(
            self.kind.name, replica, number, time.time(), stem.with_suffix(".out"), stem.with_suffix(".err")
        )
        with open(record.out, "wb") as out, open(record.err, "wb") as err:
            proc = subprocess.Popen(
                command,
                cwd=ROOT,
                env=python_env(self.run.process_env()),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        return proc, record

    def _loop(self, replica: int) -> None:
        while not self._stop.is_set():
            with self._lock:
                if self._stop.is_set():
                    return
                proc, record = self._spawn(replica)
                self._procs[replica] = proc
                self.records.append(record)
            record.returncode = proc.wait()
            with self._lock:
                self._procs.pop(replica, None)
            self._stop.wait(self.rng.uniform(*self.kind.pause))

    def alive(self, replica: int) -> bool:
        with self._lock:
            proc = self._procs.get(replica)
            return proc is not None and proc.poll() is None

    def kill(self, replica: int) -> bool:
        """SIGKILL the replica's process if one runs (True when it was killed)."""
        with self._lock:
            proc = self._procs.get(replica)
            if proc is None or proc.poll() is not None:
                return False
            proc.kill()
            for record in reversed(self.records):
                if record.replica == replica:
                    record.killed = True
                    break
            return True

    def stop(self, timeout: float = 120.0) -> None:
        """No new runs; one-shot runs end on their own, services get SIGTERM (SIGKILL after `timeout`)."""
        self._stop.set()
        with self._lock:
            procs = list(self._procs.values())
        if not self.kind.oneshot:
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for thread in self._threads:
            thread.join(timeout=10)
