"""Fuzzed documents in the jobs collection, as another writer or an old version could leave them.

Whatever is stored, the queue's claim, depth and get raise nothing but the queue's own
errors; a document that is not a job is moved to `dead` with a reason that names the
bad field, and valid jobs beside it are still claimed.
"""

from __future__ import annotations

import datetime
import typing as t

import bson
import pymongo.errors
import pytest
from hypothesis import HealthCheck, assume, given, settings

from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.job import (
    JobDocumentError,
    JobKey,
    new_job,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import JobQueue
from tests.unit.fuzz.strategies import bent, storable
from tests.unit.fuzz.test_fuzz_job_document import VALID_DOC

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _storable(doc: t.Dict[str, t.Any]) -> bool:
    if isinstance(doc.get("_id"), (list, tuple)):
        return False  # MongoDB refuses an array _id
    try:
        bson.encode(doc)
    except (bson.errors.InvalidDocument, OverflowError, TypeError, ValueError):
        return False
    return True


@FUZZ
@given(
    raw=bent(
        {**VALID_DOC, "received_at": NOW, "updated_at": NOW, "not_before": NOW}, [*VALID_DOC, "started_at"], storable
    )
)
def test_a_stored_document_of_any_shape_is_claimed_or_sent_to_dead_with_the_field_named(
    make_queue: t.Callable[..., JobQueue], raw_db: t.Any, raw: t.Dict[str, t.Any]
) -> None:
    assume(_storable(raw))
    raw_db.jobs.delete_many({})
    raw_db.claims.delete_many({})
    try:
        raw_db.jobs.insert_one(dict(raw))
    except pymongo.errors.WriteError:
        assume(False)  # what the server itself refuses (FerretDB: nested arrays) cannot be in the queue
    good = new_job(JobKey("api.github.com", "octo-org/app", 99), pool="small", labels=["x"], status="queued", now=NOW)
    queue = make_queue()
    queue.enqueue(good)

    result = queue.claim(["small"], limit=5)

    assert good.id in {lease.job.id for lease in result.leases}
    for dead in result.dead:
        assert dead.reason.startswith("invalid job document: ") or "attempts" in dead.reason, dead.reason
    # Stored as dead with the reason (the _id may be one MongoDB gave, not a string).
    dead_docs = list(raw_db.jobs.find({"status": "dead"}))
    assert sorted(d["last_error"] for d in dead_docs) == sorted(d.reason for d in result.dead)
    queue.depth()
    stored_id = raw.get("_id")
    if isinstance(stored_id, str):
        try:
            queue.get(stored_id)
        except JobDocumentError as exc:
            assert str(exc).startswith(f"{exc.field}: "), str(exc)


@pytest.mark.parametrize(
    "field, value",
    [("labels", "linux"), ("labels", [1]), ("received_at", "yesterday"), ("_id", 12), ("attempts", -1)],
)
def test_a_poison_document_goes_to_dead_naming_its_field(
    make_queue: t.Callable[..., JobQueue], raw_db: t.Any, field: str, value: t.Any
) -> None:
    doc = {**VALID_DOC, "received_at": NOW, "updated_at": NOW, "not_before": NOW, field: value}
    raw_db.jobs.insert_one(doc)
    result = make_queue().claim(["small"], limit=5)
    assert [d.id for d in result.dead] == [str(doc["_id"])]
    assert field in result.dead[0].reason, result.dead[0].reason
