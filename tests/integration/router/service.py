"""The webhook router service run as its users run it (``python -m ...router_service``), and a client.

Shared by the router's integration tests and its benchmark (`python -m tests.sandbox.bench_router`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import typing as t

import yaml

from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.router import sign

ROOT = pathlib.Path(__file__).resolve().parents[3]
MODULE = "ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.router_service"
SECRET = b"router-test-secret"
OLD_SECRET = b"router-test-secret-before-rotation"


@dataclasses.dataclass
class Answer:
    status: int
    body: t.Any
    headers: dict[str, str]


class Client:
    """One keep-alive HTTP/1.1 connection to the router (not thread-safe: one per thread)."""

    def __init__(self, port: int, timeout: float = 15.0) -> None:
        self.port = port
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Answer:
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self._conn.request(method, path, body=body, headers=headers or {})
                resp = self._conn.getresponse()
                raw = resp.read()
            except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
                self.close()  # the server closed an idle keep-alive connection: once more on a new one
                if attempt == 2:
                    raise
                continue
            if resp.getheader("Connection", "").lower() == "close":
                self.close()
            content_type = resp.getheader("Content-Type", "")
            parsed = json.loads(raw) if raw and content_type.startswith("application/json") else raw
            return Answer(resp.status, parsed, {k.lower(): v for k, v in resp.getheaders()})
        raise AssertionError("unreachable")

    def deliver(
        self,
        payload: t.Any,
        event: str = "workflow_job",
        *,
        secret: bytes | None = SECRET,
        delivery: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        out = {"Content-Type": "application/json", "X-GitHub-Event": event}
        if secret is not None:
            out["X-Hub-Signature-256"] = sign(body, secret)
        if delivery is not None:
            out["X-GitHub-Delivery"] = delivery
        out.update(headers or {})
        return self.request("POST", "/webhook", body, out)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclasses.dataclass
class RouterProcess:
    process: subprocess.Popen[str]
    port: int
    log: list[str] = dataclasses.field(repr=False)
    config_path: pathlib.Path

    def client(self) -> Client:
        return Client(self.port)

    def records(self) -> list[dict[str, t.Any]]:
        """The JSON log records written so far."""
        return [json.loads(line) for line in list(self.log) if line.startswith("{")]

    def metrics(self) -> dict[str, float]:
        """The samples of /metrics, keyed by their name and labels as exposed."""
        text = Client(self.port).request("GET", "/metrics").body.decode()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _space, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return self.process.returncode


def write_config(directory: pathlib.Path, mongodb_uri: str, database: str, **overrides: t.Any) -> pathlib.Path:
    """A configuration file (and its 0600 secret files) for a router on a free loopback port."""
    directory.mkdir(parents=True, exist_ok=True)
    secret_files = []
    for name, value in (("webhook-secret", SECRET), ("webhook-secret-old", OLD_SECRET)):
        path = directory / name
        path.write_bytes(value + b"\n")
        path.chmod(0o600)
        secret_files.append(str(path))
    uri_file = directory / "mongodb-uri"
    uri_file.write_text(mongodb_uri + "\n")
    uri_file.chmod(0o600)
    config = {
        "listen": {"host": "127.0.0.1", "port": 0},
        "webhook_secret_files": secret_files,
        "mongodb": {"uri_file": str(uri_file), "database": database},
        "pools": [
            {"name": "small", "labels": ["linux", "small"]},
            {"name": "large", "labels": ["linux", "x64", "large"]},
        ],
        "log": {"format": "json", "level": "info"},
        **overrides,
    }
    path = directory / "webhook-router.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def start(config_path: pathlib.Path, *, command: list[str] | None = None, timeout: float = 30.0) -> RouterProcess:
    """Start the service on `config_path` (or `command`) and wait until it listens (its port is read from its log)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / ".venv" / "collections"), str(ROOT)])}
    process = subprocess.Popen(
        command or [sys.executable, "-m", MODULE, "--config", str(config_path)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    log: list[str] = []
    listening = threading.Event()
    found: dict[str, int] = {}

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            log.append(line.rstrip("\n"))
            if not listening.is_set() and line.startswith("{"):
                record = json.loads(line)
                if record.get("message") == "listening":
                    found["port"] = int(record["port"])
                    listening.set()

    threading.Thread(target=read, name="router-log", daemon=True).start()
    deadline = time.monotonic() + timeout
    while not listening.wait(0.05):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait(timeout=5)
            raise AssertionError("the router did not start:\n" + "\n".join(log))
    return RouterProcess(process, found["port"], log, config_path)


@contextlib.contextmanager
def running(config_path: pathlib.Path) -> t.Iterator[RouterProcess]:
    router = start(config_path)
    try:
        yield router
    finally:
        router.stop()
