"""Converting kombu transport documents into job documents (pure), and the liveness of a claim."""

from __future__ import annotations

import base64
import datetime
import json
import typing as t

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.job import JobDocumentError, JobStatus
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.kombu_messages import (
    MAX_PAYLOAD_BYTES,
    job_from_message,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import claim_is_live

NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)
BODY = {"labels": ["x64"], "status": "queued", "url": "https://api.github.com/repos/octo/hello/actions/jobs/5"}


def transport_document(body: t.Any, *, base64_body: bool = True, content_type: str = "text/plain") -> dict[str, t.Any]:
    """A `messages` document as kombu's MongoDB transport writes it."""
    text = body if isinstance(body, str) else json.dumps(body)
    envelope = {
        "body": base64.b64encode(text.encode()).decode() if base64_body else text,
        "content-encoding": "utf-8",
        "content-type": content_type,
        "headers": {},
        "properties": {"delivery_tag": "tag-1", **({"body_encoding": "base64"} if base64_body else {})},
    }
    return {"_id": "m1", "queue": "small", "priority": 9, "payload": json.dumps(envelope)}


def convert(message: dict[str, t.Any], **kwargs: t.Any) -> t.Any:
    return job_from_message(message, pool="small", received_at=NOW, now=NOW, **kwargs)


@pytest.mark.parametrize(
    "message",
    [
        transport_document(json.dumps(BODY)),  # what the router sends: JSON text, kombu base64-encodes it
        transport_document(BODY, content_type="application/json"),
        transport_document(json.dumps(json.dumps(BODY)), content_type="application/json"),  # encoded twice
        transport_document(json.dumps(BODY), base64_body=False),
    ],
)
def test_router_messages_become_queued_jobs(message: dict[str, t.Any]) -> None:
    job = convert(message, api_host="api.github.com")
    assert (job.id, job.pool, job.labels, job.status) == (
        "api.github.com/octo/hello/5",
        "small",
        ("x64",),
        JobStatus.QUEUED,
    )
    assert (job.received_at, job.delivery_ids, job.run_id) == (NOW, ("kombu:tag-1",), None)


@pytest.mark.parametrize(
    ("message", "field", "message_text"),
    [
        ({"_id": "m1", "payload": None}, "payload", "must be the JSON text of a kombu message"),
        ({"_id": "m1", "payload": "{"}, "payload", "is not JSON"),
        ({"_id": "m1", "payload": "x" * (MAX_PAYLOAD_BYTES + 1)}, "payload", "at most 65536 are accepted"),
        (
            {"_id": "m1", "payload": json.dumps({"body": "%%%", "properties": {"body_encoding": "base64"}})},
            "payload.body",
            "is not valid base64",
        ),
        (transport_document("not json"), "payload.body", "is not JSON"),
        (transport_document([1, 2]), "payload.body", "must be a JSON object"),
        (transport_document({**BODY, "url": "https://api.github.com/repos/o/r"}), "body.url", "must be a job API URL"),
        (transport_document({**BODY, "labels": "x64"}), "body.labels", "must be a list"),
        (transport_document({**BODY, "labels": [""]}), "body.labels[0]", "must be a non-empty string"),
        (transport_document({**BODY, "status": "claimed"}), "body.status", "is set by the queue"),
        (transport_document({**BODY, "status": "bogus"}), "body.status", "must be one of"),
    ],
)
def test_unconvertible_messages_name_what_is_wrong(message: dict[str, t.Any], field: str, message_text: str) -> None:
    with pytest.raises(JobDocumentError) as caught:
        convert(message)
    assert caught.value.field == field
    assert message_text in caught.value.message


def test_a_job_url_on_another_host_is_refused_when_the_host_is_given() -> None:
    ghes = transport_document({**BODY, "url": "https://ghe.example.com/api/v3/repos/octo/hello/actions/jobs/5"})
    assert convert(ghes).id == "ghe.example.com/octo/hello/5"
    with pytest.raises(
        JobDocumentError, match=r"^body\.url: names host ghe\.example\.com, not the GitHub at api\.github\.com$"
    ):
        convert(ghes, api_host="api.github.com")


def test_a_claim_is_live_until_it_ends_or_its_lease_expires() -> None:
    assert claim_is_live({"lease_until": NOW, "ended_at": None}, NOW)
    assert not claim_is_live({"lease_until": NOW, "ended_at": None}, NOW + datetime.timedelta(milliseconds=1))
    assert not claim_is_live({"lease_until": NOW, "ended_at": NOW}, NOW)
    assert not claim_is_live({"ended_at": None}, NOW)
