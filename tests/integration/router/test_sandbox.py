"""The GitHub simulator delivers its webhooks to the router, which writes the job documents."""

from __future__ import annotations

import pathlib
import typing as t
import urllib.parse

import pytest

from tests.integration.conftest import SandboxHandle
from tests.integration.router.service import RouterProcess, running, write_config
from tests.integration.sandbox.conftest_github import GithubWorld, unique, wait_for
from tests.sandbox.mongo import MongoServer

pytestmark = pytest.mark.sandbox
REPO = "octo-org/app"
# Labels no other test's runner has: the jobs left queued here stay out of their way.
WAITING, RUNNING = unique("router-waiting"), unique("router-running")


@pytest.fixture
def gw(sandbox: SandboxHandle) -> t.Iterator[GithubWorld]:
    world = GithubWorld(sandbox)
    yield world
    world.close()


@pytest.fixture
def sandbox_router(
    tmp_path: pathlib.Path, sandbox: SandboxHandle, mongodb: MongoServer, database: str
) -> t.Iterator[RouterProcess]:
    pools = [{"name": "waiting", "labels": [WAITING]}, {"name": "running", "labels": [RUNNING]}]
    config = write_config(tmp_path / "router", mongodb.uri, database, pools=pools)
    (tmp_path / "router" / "webhook-secret").write_text(sandbox.env["GITHUB_WEBHOOK_SECRET"] + "\n")
    with running(config) as process:
        yield process


def test_jobs_queued_in_github_reach_mongodb_and_follow_their_runner(
    gw: GithubWorld, sandbox_router: RouterProcess, jobs: t.Any
) -> None:
    hook = gw.subscribe(f"http://127.0.0.1:{sandbox_router.port}/webhook", events=["workflow_job"])
    api_host = urllib.parse.urlsplit(gw.env["GITHUB_API_URL"]).netloc  # the simulator is a GHES at 127.0.0.1:PORT
    waiting = gw.enqueue(REPO, ["self-hosted", "linux", WAITING], count=3)["jobs"]

    def stored(job: dict[str, t.Any]) -> t.Any:
        return jobs.find_one({"_id": f"{api_host}/{REPO}/{job['id']}"})

    docs = wait_for(lambda: all(stored(job) for job in waiting) and [stored(job) for job in waiting], what="3 jobs")
    assert [(doc["status"], doc["pool"], doc["runner_name"]) for doc in docs] == [("queued", "waiting", None)] * 3

    # A runner that takes a job: its document follows the job to completed, with the runner's name.
    data = gw.jit(f"/repos/{REPO}", ["self-hosted", RUNNING])
    gw.start_agent(data["encoded_jit_config"], data["runner"]["name"])
    job = gw.enqueue(REPO, ["self-hosted", RUNNING], duration=0.1)["jobs"][0]
    done = wait_for(lambda: (doc := stored(job)) and doc["status"] == "completed" and doc, what="job completed")
    assert (done["runner_name"], done["pool"]) == (data["runner"]["name"], "running")
    assert done["started_at"] is not None and done["completed_at"] >= done["started_at"]
    assert len(done["delivery_ids"]) == 3  # queued, in_progress, completed

    # A redelivery (same GUID) changes nothing; every delivery of these jobs was a success for GitHub.
    # (The simulator is shared: jobs of earlier tests may still end while the hook is subscribed,
    # and the router rightly answers 202 for those it does not route.)
    ours = {job["id"] for job in [*waiting, job]}

    def deliveries() -> list[dict[str, t.Any]]:
        found = gw.control.get("/deliveries")["deliveries"]
        return [d for d in found if d["hook_id"] == hook and d["job_id"] in ours]

    gw.webhooks_idle()
    first = [d for d in deliveries() if d["job_id"] == waiting[0]["id"]]
    gw.control.post("/webhooks/redeliver", {"delivery_id": first[0]["id"]})
    gw.webhooks_idle()
    assert [d["job_id"] for d in deliveries()].count(waiting[0]["id"]) == 2
    assert {d["status_code"] for d in deliveries()} == {200}, deliveries()
    assert stored(waiting[0])["delivery_ids"] == [first[0]["guid"]]
    assert jobs.count_documents({}) == 4
