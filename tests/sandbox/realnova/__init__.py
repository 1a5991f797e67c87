"""Unmodified Nova for the test suite: installed once (cached), started per session, stopped after.

`start(workdir)` runs `server.py` under the Nova virtual environment's Python in a process
group of its own, waits until it listens, and writes `clouds.yaml` with two clouds: `realnova`
(a project member) and `realnova-admin` (an admin of the same project, who sees
`OS-EXT-SRV-ATTR:*`). `RealNova.stop()` ends the process group, so nothing is left running.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import time
import typing as t
import urllib.request

import yaml

from tests.sandbox.mongo import cache_dir

NOVA_VERSION = "34.0.0"
REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
INSTALL_SCRIPT = REPO_ROOT / "tests" / "sandbox" / "scripts" / "install-nova.sh"
SERVER = pathlib.Path(__file__).with_name("server.py")
CLOUD, ADMIN_CLOUD = "realnova", "realnova-admin"


def nova_venv() -> pathlib.Path:
    """The cached Nova virtual environment, installed on first use (PyPI, about 40 s)."""
    venv = cache_dir() / f"nova-{NOVA_VERSION}"
    subprocess.run(
        ["bash", str(INSTALL_SCRIPT), str(venv)], check=True, env={**os.environ, "NOVA_VERSION": NOVA_VERSION}
    )
    return venv


@dataclasses.dataclass
class RealNova:
    workdir: pathlib.Path
    process: subprocess.Popen[bytes]
    info: dict[str, t.Any]
    clouds_yaml: pathlib.Path

    @property
    def url(self) -> str:
        return str(self.info["url"])

    def auth(self, admin: bool = False) -> dict[str, str]:
        user = "admin" if admin else "runner"
        return {
            "auth_url": self.info["auth_url"],
            "username": user,
            "password": self.info["users"][user],
            "project_name": self.info["project_name"],
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        }

    def control(self, method: str, path: str) -> t.Any:
        req = urllib.request.Request(
            f"{self.url}/_control{path}", method=method, data=b"" if method == "POST" else None
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL; the whole process group, so nothing Nova started outlives it."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(timeout=5)


def _write_private(path: pathlib.Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def start(workdir: pathlib.Path, timeout: float = 120.0) -> RealNova:
    workdir.mkdir(parents=True, exist_ok=True)
    python = nova_venv() / "bin" / "python"
    port_file = workdir / "nova.json"
    port_file.unlink(missing_ok=True)
    log = open(workdir / "nova.log", "ab")  # noqa: SIM115 - the child writes to it
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "PYTHON"))}
    process = subprocess.Popen(
        [str(python), str(SERVER), "--port-file", str(port_file), "--parent-pid", str(os.getpid())],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    deadline = time.monotonic() + timeout
    while not port_file.exists():
        if process.poll() is not None:
            tail = (workdir / "nova.log").read_text(errors="replace").splitlines()[-30:]
            raise RuntimeError(f"Nova exited with code {process.returncode}:\n" + "\n".join(tail))
        if time.monotonic() > deadline:
            RealNova(workdir, process, {}, workdir).stop()
            raise RuntimeError(f"Nova did not listen within {timeout:.0f}s (log: {workdir / 'nova.log'})")
        time.sleep(0.05)
    info = json.loads(port_file.read_text())
    nova = RealNova(workdir, process, info, workdir / "clouds.yaml")
    common = {"region_name": "RegionOne", "interface": "public", "identity_api_version": 3, "auth_type": "password"}
    clouds = {name: {**common, "auth": nova.auth(admin)} for name, admin in ((CLOUD, False), (ADMIN_CLOUD, True))}
    _write_private(nova.clouds_yaml, yaml.safe_dump({"clouds": clouds}, sort_keys=False))
    return nova
