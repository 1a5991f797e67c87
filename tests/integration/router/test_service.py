"""The service itself: body limit while reading, health, metrics, SIGTERM, configuration check."""

from __future__ import annotations

import contextlib
import pathlib
import socket
import subprocess
import sys
import threading
import time
import typing as t
import urllib.parse

from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.router import sign
from tests.integration.router.service import MODULE, ROOT, SECRET, RouterProcess, start, write_config
from tests.integration.router.test_load import workflow_job
from tests.sandbox.mongo import MongoServer


def raw_request(port: int, head: bytes, parts: t.Iterable[bytes], pause: float = 0.0) -> bytes:
    """Send a request in parts and read the whole answer (the server closes, or we stop at the body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(head)
        try:
            for part in parts:
                time.sleep(pause)
                sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the whole body was sent
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < _length(answer):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def _length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def test_health_and_metrics(router: RouterProcess) -> None:
    client = router.client()
    assert (client.request("GET", "/healthz").status, client.request("GET", "/healthz").body) == (200, {"status": "ok"})
    client.deliver(workflow_job(1), delivery="d-1")
    client.deliver(workflow_job(2), secret=b"wrong")
    answer = client.request("GET", "/metrics")
    assert answer.headers["content-type"].startswith("text/plain; version=")
    metrics = router.metrics()
    assert metrics['ghr_router_deliveries_total{action="queued",event="workflow_job",result="inserted"}'] == 1
    assert metrics['ghr_router_deliveries_total{action="",event="",result="unauthorized"}'] == 1
    assert metrics['ghr_router_signature_failures_total{reason="mismatch"}'] == 1
    assert metrics["ghr_router_enqueue_seconds_count"] == 1
    assert not [name for name in metrics if "_created" in name]
    assert client.request("GET", "/webhook").status == 405
    assert client.request("GET", "/nothing").status == 404


def test_a_body_over_the_limit_is_refused_while_it_is_read(router: RouterProcess, jobs: t.Any) -> None:
    # Chunked: no Content-Length to refuse up front. 1 MiB + 64 KiB in 64 KiB chunks, signed as if valid.
    chunk = b"x" * 65536
    body = chunk * 17
    head = (
        b"POST /webhook HTTP/1.1\r\nHost: router\r\nTransfer-Encoding: chunked\r\nX-GitHub-Event: workflow_job\r\n"
        b"X-Hub-Signature-256: " + sign(body, SECRET).encode() + b"\r\n\r\n"
    )
    answer = raw_request(router.port, head, [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 17 + [b"0\r\n\r\n"])
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"connection: close" in answer.lower()
    # A Content-Length over the limit is refused before the body is read.
    big = b"POST /webhook HTTP/1.1\r\nHost: router\r\nContent-Length: 1073741824\r\nX-GitHub-Event: ping\r\n\r\n"
    assert raw_request(router.port, big, []).startswith(b"HTTP/1.1 413 ")
    assert jobs.count_documents({}) == 0
    assert router.metrics()['ghr_router_deliveries_total{action="",event="",result="too_large"}'] == 2


class SlowProxy:
    """A TCP proxy to MongoDB that, once armed, holds what the client sends for `delay` seconds."""

    def __init__(self, target: tuple[str, int], delay: float = 1.0) -> None:
        self.target, self.delay = target, delay
        self.armed = threading.Event()
        self.held = threading.Event()  # set when armed traffic arrived (a request is in flight)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _address = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, upstream: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if upstream and self.armed.is_set():
                    self.held.set()
                    time.sleep(self.delay)
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()


def test_sigterm_lets_the_request_in_flight_finish(
    tmp_path: pathlib.Path, mongodb: MongoServer, database: str, jobs: t.Any
) -> None:
    parts = urllib.parse.urlsplit(mongodb.uri)
    proxy = SlowProxy((parts.hostname or "127.0.0.1", parts.port or 27017))
    uri = f"mongodb://127.0.0.1:{proxy.port}/?directConnection=true"
    router = start(write_config(tmp_path, uri, database, mongodb={"uri": uri, "database": database, "timeout": 10}))
    try:
        client = router.client()
        assert client.request("GET", "/healthz").status == 200  # connected through the proxy
        proxy.armed.set()
        answers: list[int] = []
        sender = threading.Thread(target=lambda: answers.append(client.deliver(workflow_job(7)).status))
        sender.start()
        assert proxy.held.wait(20)  # the upsert is on its way to MongoDB
        router.process.terminate()
        sender.join(30)
        assert answers == [200]
        assert router.process.wait(timeout=30) == 0
    finally:
        router.stop()
        proxy.close()
    assert jobs.count_documents({"job_id": 7}) == 1
    messages = [record["message"] for record in router.records()]
    # The delivery was answered after the signal and before the process ended.
    assert messages[-3:] == ["stopping: finishing the requests in flight", "delivery", "stopped"]


def run_check(config: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", MODULE, "--config", str(config), "--check"],
        env={"PYTHONPATH": str(ROOT / ".venv" / "collections"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_check_validates_the_configuration(tmp_path: pathlib.Path, mongodb: MongoServer) -> None:
    config = write_config(tmp_path, mongodb.uri, "ghr_router_check")
    ok = run_check(config)
    assert (ok.returncode, ok.stdout.strip()) == (0, f"webhook-router: {config}: 2 pools, 2 secrets: ok")
    (tmp_path / "webhook-secret").unlink()
    bad = run_check(config)
    assert bad.returncode == 2
    assert f"webhook_secret_files[0]: cannot read {tmp_path / 'webhook-secret'}" in bad.stderr
    assert mongodb.uri not in bad.stderr + bad.stdout
