"""A real MongoDB-compatible server for tests: $MONGODB_URI, or FerretDB on a free loopback port.

FerretDB (SQLite backend, telemetry off) speaks the MongoDB wire protocol, so the
collection's pymongo code runs against it exactly as against MongoDB.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import socket
import subprocess
import time

FERRETDB_VERSION = "v1.24.2"
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / "tests" / "sandbox" / "scripts" / "install-ferretdb.sh"


def cache_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("GHR_CACHE_DIR") or pathlib.Path.home() / ".cache" / "ghr")


def ferretdb_binary() -> pathlib.Path:
    """The cached FerretDB binary, built on first use (needs Go)."""
    binary = cache_dir() / f"ferretdb-{FERRETDB_VERSION}"
    if not binary.exists():
        subprocess.run(
            ["bash", str(INSTALL_SCRIPT), str(binary)],
            check=True,
            env={**os.environ, "FERRETDB_VERSION": FERRETDB_VERSION},
        )
    return binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass
class MongoServer:
    uri: str
    process: subprocess.Popen[bytes] | None = None
    log_path: pathlib.Path | None = None
    command: list[str] | None = None  # how FerretDB was started, to start it again on the same port and data
    pid_file: pathlib.Path | None = None  # where the serving process records its child for `down`

    @property
    def restartable(self) -> bool:
        return self.command is not None

    def kill(self) -> bool:
        """SIGKILL FerretDB, as a crash or an OOM kill would (False when it was not running)."""
        if self.process is None or self.process.poll() is not None:
            return False
        self.process.kill()
        self.process.wait(timeout=10)
        return True

    def start_again(self, timeout: float = 30.0) -> bool:
        """Start FerretDB again on the same port and data after a kill (False when it still runs)."""
        if self.command is None:
            raise RuntimeError("this MongoDB was not started by the sandbox")
        if self.process is not None and self.process.poll() is None:
            return False
        self.process = _spawn(self.command, self.log_path)
        if self.pid_file is not None:
            self.pid_file.write_text(f"{self.process.pid}\n")
        wait_for_ping(self.uri, timeout=timeout, process=self.process)
        return True

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def wait_for_ping(uri: str, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None) -> None:
    import pymongo  # the sandbox needs it anyway; imported late so `--help` works without it

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"FerretDB exited with code {process.returncode} before answering ping")
        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(uri, serverSelectionTimeoutMS=500)
        try:
            client.admin.command("ping")
            return
        except Exception as exc:  # not up yet
            last = exc
            time.sleep(0.1)
        finally:
            client.close()
    raise RuntimeError(f"MongoDB at {uri} did not answer ping within {timeout:.0f}s: {last}")


def _spawn(command: list[str], log_path: pathlib.Path | None) -> subprocess.Popen[bytes]:
    with open(log_path or os.devnull, "ab") as log:
        return subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )


def start_mongodb(workdir: pathlib.Path) -> MongoServer:
    """Use $MONGODB_URI when set; else start FerretDB with its data under `workdir`."""
    uri = os.environ.get("MONGODB_URI")
    if uri:
        wait_for_ping(uri)
        return MongoServer(uri)
    binary = ferretdb_binary()
    data = workdir / "ferretdb"
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = workdir / "ferretdb.log"
    command = [
        str(binary),
        f"--listen-addr=127.0.0.1:{port}",
        "--handler=sqlite",
        f"--sqlite-url=file:{data}/",
        "--telemetry=disable",
        "--debug-addr=-",
        "--log-level=error",
        f"--state-dir={data}",
    ]
    process = _spawn(command, log_path)
    uri = f"mongodb://127.0.0.1:{port}/"
    server = MongoServer(uri, process, log_path, command)
    try:
        wait_for_ping(uri, process=process)
    except Exception:
        server.stop()
        raise
    return server
