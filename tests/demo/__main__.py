"""`make demo`: the shipped reconcile playbook against the local sandbox, from empty pools to served jobs.

1. start the sandbox (simulated OpenStack, GitHub and runner VMs; no MongoDB: pool locks are local files);
2. print the pools and run `ansible-playbook selfhosted.github_runners.reconcile` until the idle runners are online;
3. enqueue jobs in the simulated GitHub and reconcile until every job has run, showing runners busy on them;
4. print the runners by state before and after, and the API calls the reconciles made (counted by the sandbox);
5. empty the pools (state: absent) and stop the sandbox.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
import typing as t
import urllib.request

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
WORK = ROOT / ".build" / "demo"
BIN = pathlib.Path(sys.executable).parent
# Long enough that a reconcile sees runners busy on their jobs.
JOB_SECONDS = 4.0


def say(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def read_env(path: pathlib.Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _eq, value = line.partition("=")
            env[key.strip()] = value.strip().strip("'\"")
    return env


class Control:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def call(self, method: str, path: str, body: object = None) -> object:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None


def pools(env: dict[str, str]) -> list[dict[str, object]]:
    common = {
        "flavor": "m1.small",
        "image": "ubuntu-24.04-runner",
        "networks": ["runners-net"],
        "security_groups": ["runners-no-ingress"],
        "bootstrap_timeout": "2m",
        "registration_grace": "30s",
    }
    return [
        {"name": "small", "repository": env["GITHUB_REPOSITORY"], "labels": ["self-hosted", "linux", "small"],
         "min_idle": 2, "max_runners": 4, **common},
        {"name": "large", "organization": env["GITHUB_ORG"], "labels": ["self-hosted", "linux", "large"],
         "min_idle": 1, "max_runners": 2, **common},
    ]  # fmt: skip


def reconcile(env: dict[str, str], vars_file: pathlib.Path, *extra: str, show: bool = True) -> None:
    """The shipped playbook, run as the README tells users to run it."""
    cmd = ["ansible-playbook", "selfhosted.github_runners.reconcile", "-e", f"@{vars_file.relative_to(ROOT)}", *extra]
    if show:
        print("  $ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, env=env, cwd=ROOT, check=True, stdout=None if show else subprocess.DEVNULL)


def status(env: dict[str, str], vars_file: pathlib.Path) -> None:
    """The runners by state, as the shipped status playbook shows them."""
    cmd = ["ansible-playbook", "selfhosted.github_runners.status", "-e", f"@{vars_file.relative_to(ROOT)}"]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, check=True, capture_output=True, text=True)
    for line in proc.stdout.splitlines():  # the debug lines only, without the play's frame
        text = line.strip().rstrip(",")
        if text.startswith('"') and not text.startswith('"msg"'):
            print("    " + text.strip('"'))


def busy_runners(control: Control) -> int:
    state = t.cast("dict[str, t.Any]", control.call("GET", "/state"))
    return sum(1 for runner in state["github"]["runners"] if runner["busy"])


def api_calls(control: Control) -> dict[str, int]:
    """API calls per service since the last reset, as the simulators counted them."""
    counts: dict[str, int] = {}
    for counter in t.cast("list[dict[str, t.Any]]", control.call("GET", "/counters")):
        service = "github" if counter["service"] == "github" else "openstack"
        counts[service] = counts.get(service, 0) + int(counter["count"])
    return counts


def main() -> int:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    sandbox_dir = WORK / "sandbox"
    say("Starting the sandbox (simulated OpenStack, GitHub and runner VMs)")
    subprocess.run(
        [sys.executable, "-m", "tests.sandbox", "up", "--without-mongodb", "--dir", str(sandbox_dir)],
        cwd=ROOT,
        check=True,
    )
    try:
        return run_demo(sandbox_dir)
    finally:
        say("Stopping the sandbox")
        subprocess.run(
            [sys.executable, "-m", "tests.sandbox", "down", "--dir", str(sandbox_dir)], cwd=ROOT, check=False
        )


def run_demo(sandbox_dir: pathlib.Path) -> int:
    sandbox_env = read_env(sandbox_dir / "env")
    control = Control(sandbox_env["SANDBOX_CONTROL_URL"])
    env = {
        **os.environ,
        **sandbox_env,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".venv" / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_DISPLAY_SKIPPED_HOSTS": "false",
        # The playbooks run on localhost only: no inventory is needed.
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    }
    env.pop("MONGODB_URI", None)  # local file locks for the demo
    vars_file = WORK / "pools.yml"
    vars_file.write_text(
        yaml.safe_dump(
            {
                "reconcile_controller_id": "demo",
                "reconcile_pools": pools(sandbox_env),
                "reconcile_lock_dir": str(WORK / "locks"),
            }
        )
    )
    say(f"The pools, in {vars_file.relative_to(ROOT)}")
    print(vars_file.read_text())
    say("Runners by state before anything ran")
    status(env, vars_file)

    say("Reconcile: create the idle runners (min_idle 2 + 1) and wait until they are online")
    reconcile(env, vars_file, "-e", "reconcile_wait=true", "-e", "reconcile_wait_timeout=60")
    status(env, vars_file)

    jobs = [("small", sandbox_env["GITHUB_REPOSITORY"], 5), ("large", sandbox_env["GITHUB_REPOSITORY"], 2)]
    for label, repository, count in jobs:
        control.call("POST", "/jobs", {"repository": repository, "labels": ["self-hosted", "linux", label],
                                       "duration": JOB_SECONDS, "count": count})  # fmt: skip
    say(f"Enqueued 5 jobs for the small pool and 2 for the large pool ({JOB_SECONDS:g} s each); reconciling")
    control.call("POST", "/counters/reset", {})
    shown_busy = False
    for round_ in range(1, 61):
        reconcile(env, vars_file, show=round_ == 1)
        busy = busy_runners(control)
        if busy and not shown_busy:
            say("Runners at work: the reconcile never deletes a busy runner")
            status(env, vars_file)
            shown_busy = True
        pending = [j for j in control.call("GET", "/jobs")["jobs"] if j["status"] != "completed"]  # type: ignore[index]
        print(f"  round {round_}: {len(pending)} job(s) not completed yet, {busy} runner(s) busy")
        if not pending:
            break
        time.sleep(1.0)
    else:
        print("Jobs were not all served in time", file=sys.stderr)
        return 1
    calls = api_calls(control)

    say("One more reconcile replaces the runners whose job finished")
    reconcile(env, vars_file)
    time.sleep(1.0)
    say("Runners by state after the jobs")
    status(env, vars_file)
    print(f"\n  API calls while the jobs were served (counted by the sandbox): {calls}")

    say("Emptying the pools (state: absent)")
    reconcile(env, vars_file, "-e", "reconcile_state=absent")
    status(env, vars_file)
    say("Demo finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
