"""Fuzzed job documents: a valid Job or a JobDocumentError that names the field, nothing else."""

from __future__ import annotations

import datetime
import typing as t

from hypothesis import given

from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.job import (
    Job,
    JobDocumentError,
    validate_job_document,
)
from tests.unit.fuzz.strategies import FUZZ, anything, bent

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
VALID_DOC: t.Dict[str, t.Any] = {
    "_id": "api.github.com/octo-org/app/42",
    "job_id": 42,
    "run_id": 7,
    "repository": "octo-org/app",
    "labels": ["self-hosted", "linux"],
    "pool": "small",
    "status": "queued",
    "received_at": NOW,
    "updated_at": NOW,
    "not_before": NOW,
    "attempts": 0,
    "lease_owner": None,
    "lease_until": None,
    "runner_name": None,
    "last_error": None,
    "delivery_ids": ["d-1"],
}


def check(raw: object) -> None:
    try:
        job = validate_job_document(raw)
    except JobDocumentError as exc:
        text = str(exc)
        assert text.startswith(f"{exc.field}: ") and exc.message.strip(), text
        assert len(text) < 2000, text
    else:
        assert isinstance(job, Job)
        # What validates is stored again as it came: a valid document round-trips.
        assert validate_job_document(job.to_document()) == job


@FUZZ
@given(bent(VALID_DOC, [*list(VALID_DOC), "started_at", "completed_at"]))
def test_a_bent_job_document_is_valid_or_refused_naming_its_field(raw: t.Dict[str, t.Any]) -> None:
    check(raw)


@FUZZ
@given(anything)
def test_any_value_as_a_job_document_is_valid_or_refused(raw: object) -> None:
    check(raw)
