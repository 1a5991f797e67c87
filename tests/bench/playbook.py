"""The reconcile playbook as users run it: wall time in steady state for 1 and 10 pools, and Ansible's start-up.

The start-up is an empty play on localhost (no facts, no task): what every ansible-playbook run
costs before the collection's module starts.
"""

from __future__ import annotations

import pathlib
import subprocess
import time
import typing as t

import yaml

from tests.bench.driver import Bench, Scenario
from tests.bench.reconcile import SandboxCloud, clear, reconcile
from tests.bench.results import Measurement
from tests.integration.playbook import BIN, ansible_env

POOL_COUNTS = (1, 10)
RUNNERS_PER_POOL = 2


def pools(bench: Bench, count: int) -> list[dict[str, t.Any]]:
    backend = SandboxCloud(bench)
    return [backend.pool(f"play{count}x{i}", RUNNERS_PER_POOL) for i in range(count)]


def environment(bench: Bench, workdir: pathlib.Path) -> dict[str, str]:
    env = ansible_env(workdir, drop=("ANSIBLE_", "GITHUB_", "OS_"))
    env.update({k: v for k, v in bench.env.items() if k != "MONGODB_URI"})
    return env


def playbook_seconds(bench: Bench, args: list[str], workdir: pathlib.Path) -> float:
    started = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), *args],
        env=environment(bench, workdir),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    elapsed = time.monotonic() - started
    if proc.returncode:
        raise RuntimeError(f"ansible-playbook {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return elapsed


def prepare(bench: Bench) -> None:
    from tests.bench.reconcile import UNPACED, idle_runners, wait_for

    for count in POOL_COUNTS:
        reconcile(bench, pools(bench, count), bucket=UNPACED)
    for count in POOL_COUNTS:
        for pool in pools(bench, count):
            wait_for(
                f"idle runners of {pool['name']}",
                lambda p=pool: idle_runners(bench, p["name"]) >= RUNNERS_PER_POOL,
                120,
            )


def finish(bench: Bench) -> None:
    clear(bench, SandboxCloud(bench), *(p["name"] for count in POOL_COUNTS for p in pools(bench, count)))


def playbooks(bench: Bench) -> Measurement:
    m = Measurement()
    workdir = bench.workdir / "playbook"
    (workdir / "locks").mkdir(parents=True, exist_ok=True)
    empty = workdir / "empty.yml"
    empty.write_text(
        yaml.safe_dump(
            [{"name": "empty", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": []}]
        )
    )
    startup = playbook_seconds(bench, [str(empty)], workdir)
    m.add("playbook.ansible_startup", startup, "s")
    for count in POOL_COUNTS:
        extra = workdir / f"pools{count}.yml"
        settings = {
            "reconcile_controller_id": "bench",
            "reconcile_pools": pools(bench, count),
            "reconcile_lock_dir": str(workdir / "locks"),
        }
        extra.write_text(yaml.safe_dump(settings))
        wall = playbook_seconds(bench, ["selfhosted.github_runners.reconcile", "-e", f"@{extra}"], workdir)
        m.add(f"playbook.pools_{count}.wall", wall, "s")
        m.add(f"playbook.pools_{count}.ansible_startup_share", startup / wall, "ratio")
    return m


SCENARIOS = [
    Scenario(
        "playbook",
        "ansible-playbook selfhosted.github_runners.reconcile in steady state, 1 and 10 pools of 2 runners",
        playbooks,
        prepare=prepare,
        finish=finish,
        parameters={"pools": list(POOL_COUNTS), "runners_per_pool": RUNNERS_PER_POOL},
    )
]
