"""The GitHub part of the sandbox benchmark (run by tests/sandbox/bench_sandbox.py).

With N = the benchmark's server count (1,000 by default), in one repository:
registers N JIT runners with PyGithub, brings them online (runner processes started
through the control API), lists them with PyGithub in pages of 100, then runs one job
on each and waits until every job is done and every ephemeral runner is gone.
"""

from __future__ import annotations

import concurrent.futures
import statistics
import threading
import time
import typing as t

import github
from github import Auth

from tests.sandbox import launcher

if t.TYPE_CHECKING:
    from tests.sandbox.bench_sandbox import BenchContext

REPO = "octo-org/app"
LABELS = ["self-hosted", "linux", "bench"]


def _rss_mib(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _wait(predicate: t.Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the GitHub benchmark timed out")
        time.sleep(0.1)


def run(ctx: BenchContext) -> dict[str, float]:
    env = ctx.env
    count = ctx.servers
    local = threading.local()

    def client() -> github.Github:
        if not hasattr(local, "gh"):
            local.gh = github.Github(
                base_url=env["GITHUB_API_URL"],
                auth=Auth.Token(env["GITHUB_TOKEN"]),
                per_page=100,
                seconds_between_requests=None,  # PyGithub's defaults allow one write a second
                seconds_between_writes=None,
                retry=None,
            )
        return t.cast(github.Github, local.gh)

    def register(i: int) -> tuple[str, str]:
        name = f"bench-{i:05d}"
        _unused, data = client().requester.requestJsonAndCheck(
            "POST",
            f"/repos/{REPO}/actions/runners/generate-jitconfig",
            input={"name": name, "runner_group_id": 1, "labels": LABELS},
        )
        return name, data["encoded_jit_config"]

    def runners() -> list[dict[str, t.Any]]:
        return [r for r in ctx.control("GET", "/state")["github"]["runners"] if r["scope"] == REPO]

    results: dict[str, float] = {}
    pid = launcher.running_pid(ctx.workdir)
    ctx.control("POST", "/config", {"github.validate": False})
    with concurrent.futures.ThreadPoolExecutor(ctx.workers) as pool:
        started = time.perf_counter()
        configs = list(pool.map(register, range(count)))
        results["register_jit_total_s"] = time.perf_counter() - started
        results["register_jit_per_s"] = count / results["register_jit_total_s"]

    started = time.perf_counter()
    for name, config in configs:
        ctx.control("POST", "/runner-agents", {"encoded_jit_config": config, "name": name})
    _wait(lambda: sum(r["status"] == "online" for r in runners()) >= count, 120)
    results["all_online_after_s"] = time.perf_counter() - started
    results["rss_mib_with_runners"] = _rss_mib(pid)

    gh = client()
    ctx.control("POST", "/counters/reset")
    timings = []
    for _unused in range(5):
        t0 = time.perf_counter()
        listed = list(gh.get_repo(REPO).get_self_hosted_runners())
        timings.append(time.perf_counter() - t0)
    results["list_runners_pygithub_s_median"] = statistics.median(timings)
    results["listed_runners"] = len(listed)
    pages = sum(
        c["count"]
        for c in ctx.control("GET", "/counters")
        if c["service"] == "github" and c["route"] == "/repos/{owner}/{repo}/actions/runners"
    )
    results["list_runner_pages_per_listing"] = pages / 5

    started = time.perf_counter()
    for _unused in range(-(-count // 100)):
        ctx.control("POST", "/jobs", {"repository": REPO, "labels": LABELS, "count": 100, "duration": 0.5})
    _wait(lambda: not runners(), 300)  # each runner took one job, completed it and was removed
    results["jobs_done_runners_gone_after_s"] = time.perf_counter() - started
    return results
