"""The job document: validation, the status order, and building documents from reports (pure)."""

from __future__ import annotations

import dataclasses
import datetime
import typing as t

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import QueuedJob
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.job import (
    MAX_DELIVERY_IDS,
    REPORTED_STATUSES,
    STATUS_ORDER,
    Job,
    JobDocumentError,
    JobKey,
    JobStatus,
    api_host_of,
    held_report_update,
    job_from_queued_job,
    job_from_workflow_job,
    moves_forward,
    new_job,
    parse_job_url,
    remember_delivery,
    report_changes,
    settled_with_held,
    validate_job_document,
)

NOW = datetime.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=datetime.UTC)
KEY = JobKey("api.github.com", "Octo/Hello", 42)


def job(**overrides: t.Any) -> Job:
    return new_job(KEY, pool="small", labels=["self-hosted", "x64"], status="queued", now=NOW, **overrides)


def payload(**workflow_job: t.Any) -> dict[str, t.Any]:
    """A workflow_job webhook as GitHub sends it (the fields the queue reads)."""
    return {
        "action": "queued",
        "workflow_job": {
            "id": 42,
            "run_id": 7,
            "url": "https://api.github.com/repos/Octo/Hello/actions/jobs/42",
            "labels": ["self-hosted", "x64"],
            "runner_name": None,
            **workflow_job,
        },
        "repository": {"full_name": "Octo/Hello"},
    }


# --- status order ---------------------------------------------------------------------------


def test_status_order() -> None:
    assert [s.value for s in STATUS_ORDER] == [
        "waiting",
        "queued",
        "claimed",
        "spawned",
        "dead",
        "in_progress",
        "completed",
    ]
    assert moves_forward(JobStatus.QUEUED, JobStatus.IN_PROGRESS)
    assert moves_forward(JobStatus.DEAD, JobStatus.COMPLETED)  # GitHub ran it after all
    assert not moves_forward(JobStatus.CLAIMED, JobStatus.QUEUED)
    assert not moves_forward(JobStatus.QUEUED, JobStatus.QUEUED)


@settings(deadline=None)
@given(st.sampled_from(STATUS_ORDER), st.sampled_from(STATUS_ORDER), st.sampled_from(STATUS_ORDER))
def test_moves_forward_is_a_strict_order(a: JobStatus, b: JobStatus, c: JobStatus) -> None:
    assert not moves_forward(a, a)
    assert not (moves_forward(a, b) and moves_forward(b, a))
    if moves_forward(a, b) and moves_forward(b, c):
        assert moves_forward(a, c)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(sorted(REPORTED_STATUSES)), st.text("abc", min_size=1, max_size=3)), max_size=40)
)
def test_merging_reports_never_moves_back_and_keeps_deliveries_bounded(reports: list[tuple[JobStatus, str]]) -> None:
    stored = job()
    highest = STATUS_ORDER.index(stored.status)
    for status, delivery in reports:
        incoming = new_job(KEY, pool="small", labels=[], status=status.value, now=NOW, delivery_id=delivery)
        changes = report_changes(stored, incoming, NOW)
        merged = validate_job_document({**stored.to_document(), **changes})
        highest = max(highest, STATUS_ORDER.index(status))
        assert STATUS_ORDER.index(merged.status) == highest
        assert delivery in merged.delivery_ids
        assert len(merged.delivery_ids) <= MAX_DELIVERY_IDS
        assert len(set(merged.delivery_ids)) == len(merged.delivery_ids)
        stored = merged


def test_a_held_report_keeps_the_furthest_progress() -> None:
    running = dataclasses.replace(job(), status=JobStatus.IN_PROGRESS, runner_name="r1", started_at=NOW)
    done = dataclasses.replace(running, status=JobStatus.COMPLETED, completed_at=NOW)
    held = held_report_update(None, running)
    assert held == {"status": "in_progress", "runner_name": "r1", "started_at": NOW, "completed_at": None}
    assert held_report_update(held, running) is None  # the same report again
    later = held_report_update(held, done)
    assert later is not None and later["status"] == "completed"
    assert held_report_update(later, running) is None  # behind the held one
    assert held_report_update({"status": "bogus"}, running) == held  # not a report: replaced


def test_an_attempt_settles_with_the_held_progress_when_it_is_further_on() -> None:
    held = {"status": "completed", "runner_name": "r1", "started_at": NOW, "completed_at": NOW}
    spawned = {"status": "spawned", "runner_name": "r2", "spawned_runner": "r2"}
    assert settled_with_held(spawned, held) == {**spawned, **held}
    assert settled_with_held(spawned, None) == spawned
    assert settled_with_held(spawned, {"status": "bogus"}) == spawned
    running = {"status": "in_progress", "runner_name": "r1"}
    assert settled_with_held(running, {"status": "in_progress", "runner_name": "r1", "started_at": NOW}) == running


def test_a_report_that_changes_nothing_changes_nothing() -> None:
    stored = job(delivery_id="d1")
    assert report_changes(stored, job(delivery_id="d1"), NOW) == {}
    assert report_changes(stored, job(), NOW) == {}


def test_remember_delivery_keeps_the_newest() -> None:
    ids: tuple[str, ...] = ()
    for number in range(MAX_DELIVERY_IDS + 5):
        ids = remember_delivery(ids, f"d{number}")
    assert ids[0] == "d5" and ids[-1] == f"d{MAX_DELIVERY_IDS + 4}"
    assert remember_delivery(ids, "d10") == ids
    assert remember_delivery(ids, None) == ids


# --- documents ------------------------------------------------------------------------------


def test_a_document_round_trips_and_keys_are_case_insensitive() -> None:
    built = job(delivery_id="d1", run_id=7)
    assert built.id == "api.github.com/octo/hello/42"
    assert built.received_at == NOW.replace(microsecond=123000)  # what BSON keeps
    assert validate_job_document(built.to_document()) == built


@settings(max_examples=200, deadline=None)
@given(
    job_id=st.integers(1, 2**63 - 1),
    labels=st.lists(
        st.text(
            st.characters(min_codepoint=33, max_codepoint=0x2FFF, exclude_categories=("Z", "C")),
            min_size=1,
            max_size=20,
        ),
        max_size=10,
    ),
    attempts=st.integers(0, 1000),
    status=st.sampled_from(STATUS_ORDER),
)
def test_valid_documents_round_trip(job_id: int, labels: list[str], attempts: int, status: JobStatus) -> None:
    doc = new_job(
        JobKey("ghe.example.com:8443", "o/r", job_id), pool="p1", labels=labels, status="queued", now=NOW
    ).to_document()
    doc.update(attempts=attempts, status=status.value)
    parsed = validate_job_document(doc)
    assert parsed.to_document() == doc


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"_id": 5}, "_id", "must be '<api host>/<owner>/<repo>/<job id>', got 5"),
        ({"_id": "api.github.com/octo/hello/43"}, "_id", "does not name job 42 of Octo/Hello"),
        ({"_id": "bad host!/octo/hello/42"}, "_id", "must be a host name"),
        ({"job_id": -1}, "job_id", "must be a positive integer, got -1"),
        ({"job_id": True}, "job_id", "must be a positive integer, got True"),
        ({"run_id": 0}, "run_id", "must be a positive integer, got 0"),
        ({"repository": "octo"}, "repository", "must be owner/repo, got 'octo'"),
        ({"labels": "x64"}, "labels", "must be a list, got 'x64'"),
        ({"labels": ["x"] * 101}, "labels", "101 labels, at most 100 are allowed"),
        ({"labels": ["x" * 257]}, "labels[0]", "must be at most 256 characters, got 257"),
        ({"labels": ["ok", "bad\nlabel"]}, "labels[1]", "must not contain control characters"),
        ({"pool": "Small"}, "pool", "lower-case letters"),
        ({"status": "running"}, "status", "must be one of waiting, queued"),
        ({"received_at": "yesterday"}, "received_at", "must be a date and time"),
        ({"attempts": -1}, "attempts", "must be an integer of at least 0"),
        ({"delivery_ids": ["d"] * 21}, "delivery_ids", "21 delivery ids, at most 20 are kept"),
        ({"last_error": "e" * 1001}, "last_error", "at most 1000 characters"),
    ],
)
def test_poison_documents_are_refused_with_the_field_named(change: dict[str, t.Any], field: str, message: str) -> None:
    doc = {**job().to_document(), **change}
    with pytest.raises(JobDocumentError) as caught:
        validate_job_document(doc)
    assert caught.value.field == field
    assert message in caught.value.message
    assert str(caught.value).startswith(f"{field}: ")


def test_a_missing_field_is_named() -> None:
    doc = job().to_document()
    del doc["labels"]
    with pytest.raises(JobDocumentError, match=r"^labels: must be a list, got None$"):
        validate_job_document(doc)
    with pytest.raises(JobDocumentError, match=r"^document: must be a mapping"):
        validate_job_document(["not", "a", "document"])


def test_optional_fields_default_from_the_time_received() -> None:
    doc = {
        k: v
        for k, v in job().to_document().items()
        if k in ("_id", "job_id", "repository", "labels", "pool", "status", "received_at")
    }
    parsed = validate_job_document(doc)
    assert (parsed.attempts, parsed.not_before, parsed.updated_at, parsed.delivery_ids) == (
        0,
        parsed.received_at,
        parsed.received_at,
        (),
    )


def test_statuses_of_the_queue_cannot_be_reported() -> None:
    with pytest.raises(JobDocumentError, match="'claimed' is set by the queue"):
        new_job(KEY, pool="small", labels=[], status="claimed", now=NOW)


# --- reports ------------------------------------------------------------------------------


def test_a_workflow_job_webhook_from_github_com() -> None:
    built = job_from_workflow_job(payload(), pool="small", now=NOW, delivery_id="guid-1")
    assert built == job(run_id=7, delivery_id="guid-1")


def test_a_workflow_job_webhook_from_ghes_is_keyed_by_its_host() -> None:
    ghes = payload(url="https://GHE.example.com/api/v3/repos/Octo/Hello/actions/jobs/42")
    built = job_from_workflow_job({**ghes, "action": "in_progress"}, pool="small", now=NOW, api_host="ghe.example.com")
    assert (built.id, built.status) == ("ghe.example.com/octo/hello/42", JobStatus.IN_PROGRESS)
    assert built.id != job_from_workflow_job(payload(), pool="small", now=NOW).id


def test_the_key_follows_job_id_and_repository_of_the_url_only_the_host() -> None:
    # GitHub's published example payloads carry the URL of another job of another repository.
    built = job_from_workflow_job(
        payload(url="https://api.github.com/repos/octo-org/octo-repo/actions/jobs/41"), pool="small", now=NOW
    )
    assert built.id == "api.github.com/octo/hello/42"


def test_in_progress_and_completed_reports_carry_githubs_times() -> None:
    times = {"started_at": "2026-03-01T11:58:00Z", "completed_at": "2026-03-01T11:59:30.5+00:00"}
    queued = job_from_workflow_job(payload(**times), pool="small", now=NOW)
    running = job_from_workflow_job({**payload(**times), "action": "in_progress"}, pool="small", now=NOW)
    done = job_from_workflow_job({**payload(**times), "action": "completed"}, pool="small", now=NOW)
    started = datetime.datetime(2026, 3, 1, 11, 58, tzinfo=datetime.UTC)
    assert (queued.started_at, queued.completed_at) == (None, None)
    assert (running.started_at, running.completed_at) == (started, None)
    assert (done.started_at, done.completed_at) == (started, started + datetime.timedelta(seconds=90.5))
    assert validate_job_document(done.to_document()) == done
    assert report_changes(running, done, NOW) == {
        "status": "completed",
        "completed_at": done.completed_at,
        "updated_at": NOW.replace(microsecond=123000),
    }
    late = datetime.datetime(2026, 3, 1, 11, 58, 30, tzinfo=datetime.UTC)
    stale = new_job(KEY, pool="small", labels=[], status="in_progress", now=NOW, started_at=late)
    assert report_changes(done, stale, NOW) == {}  # behind: changes nothing


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({**payload(), "action": "requested"}, "action", "must be one of waiting, queued, in_progress, completed"),
        (
            payload(url="https://evil.example.com/repos/Octo/Hello/actions/jobs/42"),
            "workflow_job.url",
            "names host evil.example.com, not api.github.com",
        ),
        ({**payload(started_at="yesterday"), "action": "in_progress"}, "workflow_job.started_at", "ISO 8601"),
        ({**payload(completed_at="2026-03-01T12:00:00"), "action": "completed"}, "workflow_job.completed_at", "zone"),
        (payload(url="ftp://api.github.com/x"), "workflow_job.url", "must be a job API URL"),
        (payload(labels=None), "workflow_job.labels", "must be a list, got None"),
        (payload(labels=["x"] * 101), "workflow_job.labels", "101 labels"),
        (payload(id="42"), "workflow_job.id", "must be a positive integer"),
        (payload(run_id=-7), "workflow_job.run_id", "must be a positive integer"),
        ({**payload(), "repository": None}, "repository.full_name", "must be a non-empty string"),
        ({"action": "queued"}, "workflow_job", "must be an object"),
        ([], "payload", "must be a JSON object"),
    ],
)
def test_bad_webhooks_are_refused_with_the_payload_field_named(body: t.Any, field: str, message: str) -> None:
    with pytest.raises(JobDocumentError) as caught:
        job_from_workflow_job(body, pool="small", now=NOW)
    assert caught.value.field == field
    assert message in caught.value.message


def test_a_queued_job_of_the_api() -> None:
    queued = QueuedJob(id=42, run_id=7, repository="Octo/Hello", labels=("self-hosted", "x64"))
    assert job_from_queued_job(queued, pool="small", api_host="api.github.com", now=NOW) == job(run_id=7)


def test_job_urls_and_api_hosts() -> None:
    assert parse_job_url("https://api.github.com/repos/o/r/actions/jobs/9") == JobKey("api.github.com", "o/r", 9)
    assert parse_job_url("http://127.0.0.1:8080/api/v3/repos/o/r/actions/jobs/9/").api_host == "127.0.0.1:8080"
    assert api_host_of("https://api.github.com") == "api.github.com"
    assert api_host_of("https://GHE.example.com/api/v3") == "ghe.example.com"
    with pytest.raises(JobDocumentError, match=r"^url: must be a job API URL"):
        parse_job_url("https://api.github.com/repos/o/r/actions/runs/9")
