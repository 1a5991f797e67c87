"""GitHub's published example payloads (npm `@octokit/webhooks-examples`, pinned) sent to the router.

Every variant of the package counts: api.github.com and each GitHub Enterprise Server release.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import typing as t
import uuid

import pytest

from tests.integration.router.service import OLD_SECRET, RouterProcess, running, write_config
from tests.sandbox.mongo import MongoServer
from tests.sandbox.openapi import ensure_webhook_examples

STATUS_ORDER = ["waiting", "queued", "in_progress", "completed"]  # of the statuses GitHub reports


def load_examples() -> list[tuple[str, str, dict[str, t.Any]]]:
    """(variant, event, payload) of every example of every variant."""
    found = []
    for index in sorted(ensure_webhook_examples().glob("*/index.json")):
        for event in json.loads(index.read_text()):
            found.extend((index.parent.name, event["name"], example) for example in event["examples"])
    return found


EXAMPLES = load_examples()
WORKFLOW_JOBS = [example for example in EXAMPLES if example[1] == "workflow_job"]
OTHERS = [example for example in EXAMPLES if example[1] != "workflow_job"]
VARIANTS = sorted({variant for variant, _event, _payload in WORKFLOW_JOBS})
# One pool that serves every label the examples ask for.
EXAMPLE_LABELS = sorted({label for _v, _e, payload in WORKFLOW_JOBS for label in payload["workflow_job"]["labels"]})


@pytest.fixture
def example_router(tmp_path: pathlib.Path, mongodb: MongoServer, database: str) -> t.Iterator[RouterProcess]:
    pools = [{"name": "examples", "labels": EXAMPLE_LABELS}]
    with running(write_config(tmp_path / "router", mongodb.uri, database, pools=pools)) as process:
        yield process


def test_the_examples_cover_every_action_github_com_and_ghes() -> None:
    assert {payload["action"] for _v, _e, payload in WORKFLOW_JOBS} == set(STATUS_ORDER)
    assert "api.github.com" in VARIANTS and any(variant.startswith("ghes-") for variant in VARIANTS)
    assert len(OTHERS) > 200 and {"ping", "push", "workflow_run"} <= {event for _v, event, _p in OTHERS}


def test_every_example_with_a_wrong_or_missing_signature_is_refused_and_nothing_is_written(
    example_router: RouterProcess, jobs: t.Any
) -> None:
    client = example_router.client()
    for variant, event, payload in EXAMPLES:
        for secret in (None, b"not the secret"):
            answer = client.deliver(payload, event, secret=secret, delivery=str(uuid.uuid4()))
            assert answer.status == 401, (variant, event, answer.body)
    assert jobs.count_documents({}) == 0
    assert jobs.database.list_collection_names() == []
    metrics = example_router.metrics()
    assert metrics['ghr_router_signature_failures_total{reason="missing"}'] == len(EXAMPLES)
    assert metrics['ghr_router_signature_failures_total{reason="mismatch"}'] == len(EXAMPLES)


def test_every_other_example_event_is_ignored_with_a_2xx(example_router: RouterProcess, jobs: t.Any) -> None:
    client = example_router.client()
    for variant, event, payload in OTHERS:
        answer = client.deliver(payload, event, secret=OLD_SECRET, delivery=str(uuid.uuid4()))
        expected = (200, "pong") if event == "ping" else (202, "ignored")
        assert (answer.status, answer.body["result"]) == expected, (variant, event, answer.body)
    assert jobs.count_documents({}) == 0


def _time(value: str | None) -> datetime.datetime | None:
    return None if value is None else datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("enterprise_header", [False, True], ids=["as-published", "from-ghes"])
def test_every_workflow_job_example_is_accepted_and_ends_in_the_right_state(
    example_router: RouterProcess, jobs: t.Any, variant: str, enterprise_header: bool
) -> None:
    """Each example in the package's order; after each, the document holds what GitHub reported so far.

    `from-ghes`: the payload as a GitHub Enterprise Server at ghes.example.com sends it (its job
    URL under /api/v3, the X-GitHub-Enterprise-Host header): keyed by that host.
    """
    client = example_router.client()
    expected: dict[str, dict[str, t.Any]] = {}
    for _variant, _event, original in (example for example in WORKFLOW_JOBS if example[0] == variant):
        payload = json.loads(json.dumps(original))
        headers = {}
        host = "api.github.com"
        if enterprise_header:
            host = "ghes.example.com"
            job = payload["workflow_job"]
            job["url"] = job["url"].replace("https://api.github.com/", "https://ghes.example.com/api/v3/")
            headers = {"X-GitHub-Enterprise-Host": host, "X-GitHub-Enterprise-Version": "3.15.0"}
        delivery = str(uuid.uuid4())
        answer = client.deliver(payload, delivery=delivery, headers=headers)
        job = payload["workflow_job"]
        key = f"{host}/{payload['repository']['full_name'].lower()}/{job['id']}"
        assert answer.status == 200, answer.body
        assert (answer.body["job"], answer.body["pool"]) == (key, "examples")

        state = expected.setdefault(key, {"status": payload["action"], "runner_name": None, "deliveries": []})
        behind = STATUS_ORDER.index(payload["action"]) < STATUS_ORDER.index(state["status"])
        if not behind:
            state["status"] = payload["action"]
            if job.get("runner_name"):
                state["runner_name"] = job["runner_name"]
            if payload["action"] in ("in_progress", "completed"):
                state["started_at"] = _time(job.get("started_at"))
            if payload["action"] == "completed":
                state["completed_at"] = _time(job.get("completed_at"))
        state["deliveries"].append(delivery)

        doc = jobs.find_one({"_id": key})
        assert doc is not None
        assert (doc["status"], doc["runner_name"], doc["pool"]) == (state["status"], state["runner_name"], "examples")
        assert (doc["job_id"], doc["run_id"], doc["labels"]) == (job["id"], job["run_id"], job["labels"])
        assert doc["delivery_ids"] == state["deliveries"]
        assert doc.get("started_at") == state.get("started_at")
        assert doc.get("completed_at") == state.get("completed_at")
    assert jobs.count_documents({}) == len(expected)
