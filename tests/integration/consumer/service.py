"""The consumer service run as its users run it (``python -m ...consumer_service``)."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import signal
import subprocess
import sys
import threading
import typing as t
import urllib.request

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
MODULE = "ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.consumer_service"


def write_config(
    directory: pathlib.Path,
    sandbox: t.Any,
    mongodb_uri: str,
    database: str,
    pools: t.Sequence[dict[str, t.Any]],
    controller_id: str,
    **consumer: t.Any,
) -> pathlib.Path:
    """A configuration file as the reactive_consumer role writes it, with its secret file (0600)."""
    directory.mkdir(parents=True, exist_ok=True)
    token = directory / "github-token"
    token.write_text(sandbox.env["GITHUB_TOKEN"] + "\n")
    token.chmod(0o600)
    metrics_port = consumer.pop("metrics_port", 0)
    doorbell = consumer.pop("doorbell", False)
    config = {
        "controller_id": controller_id,
        "pools": list(pools),
        "github": {"api_url": sandbox.env["GITHUB_API_URL"], "token_file": str(token), "timeout": 30},
        "openstack": {"cloud": sandbox.env["OS_CLOUD"], "api_timeout": 30},
        "mongodb": {"uri": mongodb_uri, "database": database, "timeout": 30, "doorbell": doorbell},
        "consumer": {"poll_interval": 0.05, "lease_ttl": 10, "retry_delay": 0.5, "retry_delay_max": 2, **consumer},
        "metrics": {"host": "127.0.0.1", "port": metrics_port},
        "log": {"format": "json", "level": "info"},
    }
    path = directory / "consumer.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclasses.dataclass
class ConsumerProcess:
    process: subprocess.Popen[str]
    lines: list[str]

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def wait(self, timeout: float = 60.0) -> int:
        return self.process.wait(timeout=timeout)

    def get(self, port: int, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


def start(config: pathlib.Path, sandbox: t.Any) -> ConsumerProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / ".venv" / "collections"), str(ROOT)]),
        "OS_CLIENT_CONFIG_FILE": sandbox.env["OS_CLIENT_CONFIG_FILE"],
    }
    process = subprocess.Popen(
        [sys.executable, "-m", MODULE, "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[str] = []

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return ConsumerProcess(process, lines)
