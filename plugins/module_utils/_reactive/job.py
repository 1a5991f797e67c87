# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The job document: one workflow job that waits for, or is served by, a reactive runner.

Stored in the `jobs` collection, keyed by ``<api host>/<owner>/<repo>/<job id>`` so
that two GitHub instances (github.com and a GitHub Enterprise Server) never collide.
Everything here is pure: building a document from a `workflow_job` webhook, a queued
job of the GitHub API or a job URL; validating a raw document from the database (a
poison document gets a reason that names the bad field); and the status order.

Statuses and who sets them::

    waiting -> queued -> claimed -> spawned -> dead -> in_progress -> completed
    (reports: webhooks, backfill)   (the queue's lease holder)    (reports)

Reports (webhooks, backfills, migrated messages) only move a status forward in that
order; a re-sent `queued` webhook never takes a claimed or spawned job back. `dead`
ranks below `in_progress` because GitHub's word that a job runs is a fact even for a
job the consumer gave up on. The only step back is the lease holder's release,
claimed -> queued, after a failed attempt.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import re
import typing as t
import urllib.parse

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import (
    MAX_LABELS,
    parse_pool_name,
    parse_repository,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import ConfigError, QueueError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import QueuedJob

_UTC = datetime.timezone.utc

DEFAULT_API_HOST = "api.github.com"
# Bounds that keep one document small whatever a webhook sender puts in it.
MAX_LABEL_LENGTH = 256
MAX_DELIVERY_IDS = 20
MAX_DELIVERY_ID_LENGTH = 100
MAX_ERROR_LENGTH = 1000
MAX_NAME_LENGTH = 256  # runner names and lease owners
MAX_ID = 2**63 - 1  # GitHub ids are int64; BSON stores int64
_HOST_RE = re.compile(
    r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*(?::[0-9]{1,5})?"
)
_JOB_PATH_RE = re.compile(r"(?:/.*)?/repos/([^/]+)/([^/]+)/actions/jobs/([0-9]+)/?")


class JobDocumentError(QueueError):
    """A job document, webhook payload or message that cannot be a job; `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class JobStatus(str, enum.Enum):
    WAITING = "waiting"
    QUEUED = "queued"
    CLAIMED = "claimed"
    SPAWNED = "spawned"
    DEAD = "dead"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


STATUS_ORDER: t.Tuple[JobStatus, ...] = tuple(JobStatus)
_RANK = {status: rank for rank, status in enumerate(STATUS_ORDER)}
#: Statuses that GitHub reports (webhook actions, job listings); the others belong to the queue.
REPORTED_STATUSES = frozenset({JobStatus.WAITING, JobStatus.QUEUED, JobStatus.IN_PROGRESS, JobStatus.COMPLETED})


def moves_forward(current: JobStatus, new: JobStatus) -> bool:
    """True when a report of `new` may replace `current` (strictly later in the order)."""
    return _RANK[new] > _RANK[current]


@dataclasses.dataclass(frozen=True)
class JobKey:
    """What identifies a job across GitHub instances."""

    api_host: str
    repository: str  # owner/repo, as GitHub spells it
    job_id: int

    @property
    def id(self) -> str:
        # GitHub names are case-insensitive: one document whatever the spelling of a delivery.
        return f"{self.api_host}/{self.repository.lower()}/{self.job_id}"


@dataclasses.dataclass(frozen=True)
class Job:
    """A validated job document (see the module docstring for the statuses)."""

    key: JobKey
    run_id: t.Optional[int]
    labels: t.Tuple[str, ...]
    pool: str
    status: JobStatus
    received_at: datetime.datetime
    updated_at: datetime.datetime
    not_before: datetime.datetime
    attempts: int = 0  # claims so far: the n-th claim is attempt n
    lease_owner: t.Optional[str] = None
    lease_until: t.Optional[datetime.datetime] = None
    runner_name: t.Optional[str] = None
    last_error: t.Optional[str] = None
    delivery_ids: t.Tuple[str, ...] = ()
    # When GitHub says the job started and completed (in_progress and completed reports).
    started_at: t.Optional[datetime.datetime] = None
    completed_at: t.Optional[datetime.datetime] = None

    @property
    def id(self) -> str:
        return self.key.id

    @property
    def job_id(self) -> int:
        return self.key.job_id

    @property
    def repository(self) -> str:
        return self.key.repository

    @property
    def api_host(self) -> str:
        return self.key.api_host

    def to_document(self) -> t.Dict[str, t.Any]:
        """The document as stored (BSON-ready)."""
        return {
            "_id": self.id,
            "job_id": self.job_id,
            "run_id": self.run_id,
            "repository": self.repository,
            "labels": list(self.labels),
            "pool": self.pool,
            "status": self.status.value,
            "received_at": self.received_at,
            "updated_at": self.updated_at,
            "attempts": self.attempts,
            "not_before": self.not_before,
            "lease_owner": self.lease_owner,
            "lease_until": self.lease_until,
            "runner_name": self.runner_name,
            "last_error": self.last_error,
            "delivery_ids": list(self.delivery_ids),
            "started_at": self.started_at,
            "completed_at": self.completed_at,
        }


def to_stored_time(value: datetime.datetime) -> datetime.datetime:
    """UTC, cut to the millisecond that BSON keeps, so a stored time reads back equal."""
    value = value.replace(tzinfo=_UTC) if value.tzinfo is None else value.astimezone(_UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def bounded_error(text: str) -> str:
    """An error text cut to what a document keeps."""
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 3] + "..."


def remember_delivery(known: t.Sequence[str], delivery_id: t.Optional[str]) -> t.Tuple[str, ...]:
    """The delivery ids to keep: the newest MAX_DELIVERY_IDS, each once."""
    if delivery_id is None or delivery_id in known:
        return tuple(known)
    return (*known, delivery_id)[-MAX_DELIVERY_IDS:]


def report_changes(existing: Job, report: Job, now: datetime.datetime) -> t.Dict[str, t.Any]:
    """The fields a report (webhook, backfill, migrated message) changes in a stored job; {} for none.

    The status only moves forward; the runner name and GitHub's start and completion times
    follow a report that is not behind; a run id fills a gap; delivery ids are remembered
    (bounded). Labels and pool stay as first stored.
    """
    changes: t.Dict[str, t.Any] = {}
    if moves_forward(existing.status, report.status):
        changes["status"] = report.status.value
    not_behind = _RANK[report.status] >= _RANK[existing.status]
    if not_behind:
        for field in ("runner_name", "started_at", "completed_at"):
            value = getattr(report, field)
            if value is not None and value != getattr(existing, field):
                changes[field] = value
    if existing.run_id is None and report.run_id is not None:
        changes["run_id"] = report.run_id
    delivery_ids = existing.delivery_ids
    for delivery_id in report.delivery_ids:
        delivery_ids = remember_delivery(delivery_ids, delivery_id)
    if delivery_ids != existing.delivery_ids:
        changes["delivery_ids"] = list(delivery_ids)
    if changes:
        changes["updated_at"] = to_stored_time(now)
    return changes


#: Where a job that stays claimable keeps the progress GitHub reported for it (see `JobQueue`).
HELD_REPORT = "held_report"


def held_report_update(stored: object, report: Job) -> t.Optional[t.Dict[str, t.Any]]:
    """The held report to store for `report` over the `stored` one; None when it changes nothing.

    A report that is behind the stored one (an in_progress after a completed) keeps the stored one.
    """
    held = {
        "status": report.status.value,
        "runner_name": report.runner_name,
        "started_at": report.started_at,
        "completed_at": report.completed_at,
    }
    if isinstance(stored, t.Mapping):
        try:
            if _RANK[report.status] < _RANK[JobStatus(stored.get("status"))]:
                return None
        except ValueError:
            pass  # not a status: replaced
        if all(stored.get(field) == value for field, value in held.items()):
            return None
    return held


def settled_with_held(fields: t.Mapping[str, t.Any], stored: object) -> t.Dict[str, t.Any]:
    """The fields that settle a claimed job, with the progress of its held report when that is further on.

    `fields` set the outcome of an attempt (status, runner names); a held report of a job that
    GitHub ran or finished meanwhile wins over an outcome behind it, with its runner and times.
    """
    out = dict(fields)
    if not isinstance(stored, t.Mapping):
        return out
    try:
        held_status = JobStatus(stored.get("status"))
    except ValueError:
        return out
    if _RANK[held_status] <= _RANK[JobStatus(out["status"])]:
        return out
    out["status"] = held_status.value
    for field in ("runner_name", "started_at", "completed_at"):
        if stored.get(field) is not None:
            out[field] = stored[field]
    return out


# --- identifiers and URLs ---------------------------------------------------------------


def parse_api_host(value: object, *, path: str = "api_host") -> str:
    """A GitHub API host (name or name:port), lower-case."""
    if not isinstance(value, str) or len(value) > 253 or not _HOST_RE.fullmatch(value.lower()):
        raise JobDocumentError(path, f"must be a host name (optionally with :port), got {_show(value)}")
    return value.lower()


def api_host_of(api_url: str) -> str:
    """The host that keys jobs of a GitHub API URL: api.github.com, or the GHES host of https://HOST/api/v3."""
    return parse_api_host(urllib.parse.urlsplit(api_url).netloc, path="github_api_url")


def parse_job_url(url: object, *, path: str = "url") -> JobKey:
    """The job a REST API job URL (``https://HOST[/api/v3]/repos/OWNER/REPO/actions/jobs/ID``) names."""
    if not isinstance(url, str) or len(url) > 2048:
        raise JobDocumentError(path, f"must be a job API URL, got {_show(url)}")
    parts = urllib.parse.urlsplit(url)
    match = _JOB_PATH_RE.fullmatch(parts.path)
    if parts.scheme not in ("https", "http") or not match:
        raise JobDocumentError(
            path, f"must be a job API URL like https://api.github.com/repos/o/r/actions/jobs/1, got {url!r}"
        )
    owner, repo, job_id = match.groups()
    return JobKey(
        api_host=parse_api_host(parts.netloc, path=path),
        repository=_repository(f"{owner}/{repo}", path),
        job_id=_positive_int(int(job_id), path),
    )


def parse_job_key(value: object, *, path: str = "_id") -> JobKey:
    """The parts of a document `_id` (``<api host>/<owner>/<repo>/<job id>``)."""
    if not isinstance(value, str) or value.count("/") != 3:
        raise JobDocumentError(path, f"must be '<api host>/<owner>/<repo>/<job id>', got {_show(value)}")
    host, owner, repo, job_id = value.split("/")
    if not job_id.isdigit():
        raise JobDocumentError(path, f"must end in a numeric job id, got {value!r}")
    return JobKey(
        parse_api_host(host, path=path), _repository(f"{owner}/{repo}", path), _positive_int(int(job_id), path)
    )


# --- validation of stored documents -----------------------------------------------------


def validate_job_document(raw: object) -> Job:
    """A Job from a raw document, or JobDocumentError naming the first bad field."""
    if not isinstance(raw, t.Mapping):
        raise JobDocumentError("document", f"must be a mapping, got {type(raw).__name__}")
    doc_key = parse_job_key(raw.get("_id"))
    repository = _repository(raw.get("repository"), "repository")
    key = JobKey(doc_key.api_host, repository, _positive_int(raw.get("job_id"), "job_id"))
    if key.id != doc_key.id:
        raise JobDocumentError("_id", f"{raw.get('_id')!r} does not name job {key.job_id} of {repository}")
    received_at = _time(raw.get("received_at"), "received_at")
    return Job(
        key=key,
        run_id=_optional(raw.get("run_id"), "run_id", _positive_int),
        labels=_job_labels(raw.get("labels"), "labels"),
        pool=_pool(raw.get("pool"), "pool"),
        status=_status(raw.get("status"), "status"),
        received_at=received_at,
        updated_at=_time(raw.get("updated_at", received_at), "updated_at"),
        not_before=_time(raw.get("not_before", received_at), "not_before"),
        attempts=_count(raw.get("attempts", 0), "attempts"),
        lease_owner=_optional(raw.get("lease_owner"), "lease_owner", _name),
        lease_until=_optional(raw.get("lease_until"), "lease_until", _time),
        runner_name=_optional(raw.get("runner_name"), "runner_name", _name),
        last_error=_optional(raw.get("last_error"), "last_error", _error_text),
        delivery_ids=_delivery_ids(raw.get("delivery_ids", []), "delivery_ids"),
        started_at=_optional(raw.get("started_at"), "started_at", _time),
        completed_at=_optional(raw.get("completed_at"), "completed_at", _time),
    )


# --- building documents from reports ------------------------------------------------------


def new_job(
    key: JobKey,
    *,
    pool: str,
    labels: t.Iterable[object],
    status: object,
    now: datetime.datetime,
    run_id: object = None,
    runner_name: object = None,
    delivery_id: t.Optional[str] = None,
    received_at: t.Optional[datetime.datetime] = None,
    started_at: t.Optional[datetime.datetime] = None,
    completed_at: t.Optional[datetime.datetime] = None,
) -> Job:
    """A fresh document for a job that a report names, validated like a stored one."""
    at = to_stored_time(now)
    received = to_stored_time(received_at) if received_at is not None else at
    doc = {
        "_id": key.id,
        "job_id": key.job_id,
        "repository": key.repository,
        "run_id": run_id,
        "labels": list(labels),
        "pool": pool,
        "status": status,
        "received_at": received,
        "updated_at": at,
        "not_before": received,
        "runner_name": runner_name,
        "delivery_ids": [] if delivery_id is None else [delivery_id],
        "started_at": started_at,
        "completed_at": completed_at,
    }
    job = validate_job_document(doc)
    if job.status not in REPORTED_STATUSES:
        raise JobDocumentError("status", f"{job.status.value!r} is set by the queue, not reported by GitHub")
    return job


def job_from_workflow_job(
    payload: object,
    *,
    pool: str,
    now: datetime.datetime,
    api_host: str = DEFAULT_API_HOST,
    delivery_id: t.Optional[str] = None,
) -> Job:
    """The document for a `workflow_job` webhook delivered by the GitHub at `api_host`.

    `api_host` is the delivering instance (the `X-GitHub-Enterprise-Host` header for GHES):
    a payload whose job URL names another host is refused rather than keyed elsewhere. The
    key comes from the job id and repository; of the job URL only the host counts (GitHub's
    own example payloads carry URLs of other jobs). `in_progress` and `completed` reports
    carry GitHub's start time, `completed` its completion time.
    """
    if not isinstance(payload, t.Mapping):
        raise JobDocumentError("payload", "must be a JSON object")
    workflow_job = payload.get("workflow_job")
    if not isinstance(workflow_job, t.Mapping):
        raise JobDocumentError("workflow_job", "must be an object")
    repository = payload.get("repository")
    full_name = repository.get("full_name") if isinstance(repository, t.Mapping) else None
    host = parse_api_host(api_host)
    key = JobKey(
        host, _repository(full_name, "repository.full_name"), _positive_int(workflow_job.get("id"), "workflow_job.id")
    )
    if workflow_job.get("url") is not None:
        named = parse_job_url(workflow_job.get("url"), path="workflow_job.url")
        if named.api_host != host:
            raise JobDocumentError("workflow_job.url", f"names host {named.api_host}, not {host} of this delivery")
    status = _reported_status(payload.get("action"), "action")
    started = completed = None
    if status in (JobStatus.IN_PROGRESS, JobStatus.COMPLETED):
        started = _optional(workflow_job.get("started_at"), "workflow_job.started_at", _iso_time)
    if status is JobStatus.COMPLETED:
        completed = _optional(workflow_job.get("completed_at"), "workflow_job.completed_at", _iso_time)
    return new_job(
        key,
        pool=pool,
        labels=_job_labels(workflow_job.get("labels"), "workflow_job.labels"),
        status=status.value,
        now=now,
        run_id=_optional(workflow_job.get("run_id"), "workflow_job.run_id", _positive_int),
        runner_name=_optional(workflow_job.get("runner_name") or None, "workflow_job.runner_name", _name),
        delivery_id=_optional(delivery_id, "delivery_id", _delivery_id),
        started_at=started,
        completed_at=completed,
    )


def job_from_queued_job(queued: QueuedJob, *, pool: str, api_host: str, now: datetime.datetime) -> Job:
    """The document for a queued job found through the GitHub API (a backfill of lost webhooks)."""
    key = JobKey(
        parse_api_host(api_host), _repository(queued.repository, "repository"), _positive_int(queued.id, "job_id")
    )
    return new_job(key, pool=pool, labels=queued.labels, status=JobStatus.QUEUED.value, now=now, run_id=queued.run_id)


# --- field checks -------------------------------------------------------------------------


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _list(value: object, path: str) -> t.Sequence[object]:
    if not isinstance(value, (list, tuple)):
        raise JobDocumentError(path, f"must be a list, got {_show(value)}")
    return value


def _repository(value: object, path: str) -> str:
    try:
        return parse_repository(value, path=path)
    except ConfigError as exc:
        raise JobDocumentError(exc.field, exc.message) from None


def _pool(value: object, path: str) -> str:
    try:
        return parse_pool_name(value, path=path)
    except ConfigError as exc:
        raise JobDocumentError(exc.field, exc.message) from None


def _positive_int(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise JobDocumentError(path, f"must be a positive integer, got {_show(value)}")
    return value


def _count(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise JobDocumentError(path, f"must be an integer of at least 0, got {_show(value)}")
    return value


def _time(value: object, path: str) -> datetime.datetime:
    if not isinstance(value, datetime.datetime):
        raise JobDocumentError(path, f"must be a date and time, got {_show(value)}")
    return to_stored_time(value)


def _iso_time(value: object, path: str) -> datetime.datetime:
    # GitHub writes ISO 8601 with a Z; Python 3.10's fromisoformat does not read the Z.
    if isinstance(value, str) and len(value) <= 40:
        try:
            parsed = datetime.datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return to_stored_time(parsed)
    raise JobDocumentError(path, f"must be an ISO 8601 time with a zone, got {_show(value)}")


def _text(value: object, path: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise JobDocumentError(path, f"must be a non-empty string, got {_show(value)}")
    if len(value) > limit:
        raise JobDocumentError(path, f"must be at most {limit} characters, got {len(value)}")
    if any(ord(ch) < 32 for ch in value):
        raise JobDocumentError(path, "must not contain control characters")
    return value


def _name(value: object, path: str) -> str:
    return _text(value, path, MAX_NAME_LENGTH)


def _error_text(value: object, path: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_ERROR_LENGTH:
        raise JobDocumentError(path, f"must be a string of at most {MAX_ERROR_LENGTH} characters")
    return value


T = t.TypeVar("T")


def _optional(value: object, path: str, check: t.Callable[[object, str], T]) -> t.Optional[T]:
    return None if value is None else check(value, path)


def _status(value: object, path: str) -> JobStatus:
    try:
        return JobStatus(value)
    except ValueError:
        known = ", ".join(s.value for s in STATUS_ORDER)
        raise JobDocumentError(path, f"must be one of {known}, got {_show(value)}") from None


def _reported_status(value: object, path: str) -> JobStatus:
    reported = {s.value: s for s in STATUS_ORDER if s in REPORTED_STATUSES}
    if not isinstance(value, str) or value not in reported:
        raise JobDocumentError(path, f"must be one of {', '.join(reported)}, got {_show(value)}")
    return reported[value]


def _job_labels(value: object, path: str) -> t.Tuple[str, ...]:
    # Empty is allowed: a job may ask for nothing but what every runner has.
    items = _list(value, path)
    if len(items) > MAX_LABELS:
        raise JobDocumentError(path, f"{len(items)} labels, at most {MAX_LABELS} are allowed")
    return tuple(_text(item, f"{path}[{index}]", MAX_LABEL_LENGTH) for index, item in enumerate(items))


def _delivery_ids(value: object, path: str) -> t.Tuple[str, ...]:
    items = _list(value, path)
    if len(items) > MAX_DELIVERY_IDS:
        raise JobDocumentError(path, f"{len(items)} delivery ids, at most {MAX_DELIVERY_IDS} are kept")
    return tuple(_delivery_id(item, f"{path}[{index}]") for index, item in enumerate(items))


def _delivery_id(value: object, path: str) -> str:
    return _text(value, path, MAX_DELIVERY_ID_LENGTH)
