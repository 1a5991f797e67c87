# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The webhook router's request handling: verify, parse, route, and enqueue one delivery.

No HTTP server here: `WebhookRouter.handle` takes the headers and the raw body of a
``POST /webhook`` and returns a `Reply` (status, body, and what the metrics count); the
service (`router_service`) is a thin shell that reads the request and writes the reply.

In order, and nothing of a later step happens when an earlier one refuses:

1. a body over the limit: 413;
2. `X-Hub-Signature-256` checked against every configured secret (HMAC-SHA256 over the
   raw body, constant-time compare): missing, malformed or wrong is a 401;
3. the body parsed (JSON, or the `payload` field of a form-encoded delivery): 400 when it
   is not a JSON object;
4. `ping`: 200; another event than `workflow_job`, or an action the queue does not know: 202;
5. `queued`, `waiting`, `in_progress` and `completed` jobs routed to the first pool (by
   priority) whose labels and match expression serve them; none: 202, counted, not stored;
6. the job document upserted by `<api host>/<owner>/<repo>/<job id>`: 200 with the outcome
   (inserted, updated, or duplicate for a delivery that changes nothing); 503 when MongoDB fails.

The API host is the `X-GitHub-Enterprise-Host` of a GHES delivery, else the host of the
job URL in the (signed) payload, else api.github.com.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import hashlib
import hmac
import json
import re
import time
import typing as t
import urllib.parse

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import QueueError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import job_matches
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.job import (
    DEFAULT_API_HOST,
    MAX_DELIVERY_ID_LENGTH,
    Job,
    JobDocumentError,
    job_from_workflow_job,
    parse_api_host,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.mongo import utc_now
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import EnqueueOutcome

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
SIGNATURE_HEADER = "x-hub-signature-256"
EVENT_HEADER = "x-github-event"
DELIVERY_HEADER = "x-github-delivery"
ENTERPRISE_HOST_HEADER = "x-github-enterprise-host"
ROUTED_ACTIONS = frozenset({"queued", "waiting", "in_progress", "completed"})
_SIGNATURE_RE = re.compile(r"sha256=([0-9a-fA-F]{64})")
# Event and action names become metric labels: only GitHub's spelling, so a sender cannot
# grow the label set beyond GitHub's names.
_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,49}")
_DELIVERY_RE = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_DELIVERY_ID_LENGTH}}}")


class Result(str, enum.Enum):
    """What became of a delivery (the `result` label of the delivery counter)."""

    INSERTED = "inserted"
    UPDATED = "updated"
    DUPLICATE = "duplicate"
    UNMATCHED = "unmatched"
    IGNORED = "ignored"
    PONG = "pong"
    INVALID = "invalid"
    UNAUTHORIZED = "unauthorized"
    TOO_LARGE = "too_large"
    UNAVAILABLE = "unavailable"


_ENQUEUED = {
    EnqueueOutcome.INSERTED: Result.INSERTED,
    EnqueueOutcome.UPDATED: Result.UPDATED,
    EnqueueOutcome.UNCHANGED: Result.DUPLICATE,
}


class SignatureFailure(str, enum.Enum):
    MISSING = "missing"
    MALFORMED = "malformed"
    MISMATCH = "mismatch"


@dataclasses.dataclass(frozen=True)
class Reply:
    """The answer to one delivery, and what the service logs and counts about it.

    `event` and `action` are empty until the signature is verified: nothing a sender
    without the secret puts in a request reaches the metrics or the logs.
    """

    status: int
    result: Result
    message: str
    event: str = ""
    action: str = ""
    delivery_id: t.Optional[str] = None
    job_id: t.Optional[str] = None
    pool: t.Optional[str] = None
    signature_failure: t.Optional[SignatureFailure] = None
    enqueue_seconds: t.Optional[float] = None

    def body(self) -> t.Dict[str, t.Any]:
        out: t.Dict[str, t.Any] = {"result": self.result.value, "message": self.message}
        if self.job_id is not None:
            out["job"] = self.job_id
        if self.pool is not None:
            out["pool"] = self.pool
        return out


class JobSink(t.Protocol):
    """Where routed jobs go: the `JobQueue`, or a stand-in in tests and benchmarks."""

    def enqueue(self, job: Job) -> EnqueueOutcome: ...


class Matcher(t.Protocol):
    """A compiled JMESPath expression (jmespath's ParsedResult)."""

    def search(self, value: t.Any) -> t.Any: ...


@dataclasses.dataclass(frozen=True)
class PoolRoute:
    """Which jobs a pool takes: all of a job's labels among the pool's (OS and architecture
    labels aside), and, when set, a JMESPath expression over the payload that is true."""

    pool: str
    labels: t.Tuple[str, ...]
    priority: int = 0
    expression: t.Optional[str] = None
    matcher: t.Optional[Matcher] = dataclasses.field(default=None, compare=False, repr=False)

    def serves(self, labels: t.Sequence[str], payload: t.Mapping[str, t.Any]) -> bool:
        if not job_matches(labels, self.labels, generic_aside=True):
            return False
        if self.matcher is None:
            return True
        try:
            return _truthy(self.matcher.search(payload))
        except Exception:  # a type error inside the expression (JMESPathError) or a too deep payload
            return False


def _truthy(value: t.Any) -> bool:
    """JMESPath's truth: false, null, and empty strings, lists and objects are false; numbers are true."""
    if value is None or value is False:
        return False
    if isinstance(value, (str, list, dict)):
        return len(value) > 0
    return True


def order_routes(routes: t.Iterable[PoolRoute]) -> t.Tuple[PoolRoute, ...]:
    """Highest priority first; pools of equal priority in the order given."""
    return tuple(sorted(routes, key=lambda route: -route.priority))


def select_pool(
    routes: t.Sequence[PoolRoute], labels: t.Sequence[str], payload: t.Mapping[str, t.Any]
) -> t.Optional[PoolRoute]:
    """The first route (in the given order) that serves the job, or None."""
    return next((route for route in routes if route.serves(labels, payload)), None)


def signature_failure(body: bytes, header: t.Optional[str], secrets: t.Sequence[bytes]) -> t.Optional[SignatureFailure]:
    """None when `header` (``sha256=<hex>``) is the HMAC-SHA256 of `body` under one of `secrets`."""
    if header is None:
        return SignatureFailure.MISSING
    match = _SIGNATURE_RE.fullmatch(header.strip())
    if match is None:
        return SignatureFailure.MALFORMED
    given = match.group(1).lower().encode("ascii")
    # Every secret is compared, so the time taken does not tell which one matched.
    matched = False
    for secret in secrets:
        expected = hmac.new(secret, body, hashlib.sha256).hexdigest().encode("ascii")
        matched |= hmac.compare_digest(expected, given)
    return None if matched else SignatureFailure.MISMATCH


def sign(body: bytes, secret: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub sends for `body`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def parse_body(body: bytes, content_type: t.Optional[str]) -> t.Dict[str, t.Any]:
    """The JSON object a delivery carries: the body itself, or its `payload` form field."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise JobDocumentError("body", "is not UTF-8") from None
    if media == "application/x-www-form-urlencoded":
        try:
            fields = urllib.parse.parse_qs(text, strict_parsing=True, max_num_fields=10)
        except ValueError:
            fields = {}
        if list(fields) != ["payload"] or len(fields["payload"]) != 1:
            raise JobDocumentError("body", "a form-encoded delivery must have one field, payload")
        text = fields["payload"][0]
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError) as exc:  # a JSONDecodeError, or nesting deeper than Python's stack
        message = (
            f"{exc.msg} at line {exc.lineno} column {exc.colno}"
            if isinstance(exc, json.JSONDecodeError)
            else "nested too deeply"
        )
        raise JobDocumentError("body", f"is not JSON: {message}") from None
    if not isinstance(parsed, dict):
        raise JobDocumentError("body", "must be a JSON object")
    return parsed


def delivery_api_host(payload: t.Mapping[str, t.Any], enterprise_host: t.Optional[str]) -> str:
    """The API host whose jobs a delivery reports (see the module docstring)."""
    if enterprise_host is not None:
        return parse_api_host(enterprise_host.strip(), path="X-GitHub-Enterprise-Host")
    workflow_job = payload.get("workflow_job")
    url = workflow_job.get("url") if isinstance(workflow_job, t.Mapping) else None
    if isinstance(url, str):
        host = urllib.parse.urlsplit(url).netloc
        if host:
            return parse_api_host(host, path="workflow_job.url")
    return DEFAULT_API_HOST


class WebhookRouter:
    """Handles deliveries; thread-safe when the sink is (the JobQueue is)."""

    def __init__(
        self,
        routes: t.Iterable[PoolRoute],
        secrets: t.Sequence[bytes],
        sink: JobSink,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        clock: t.Callable[[], datetime.datetime] = utc_now,
        timer: t.Callable[[], float] = time.perf_counter,
    ) -> None:
        if not secrets or not all(secrets):
            raise ValueError("at least one webhook secret is needed, and none may be empty")
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be positive")
        self.routes = order_routes(routes)
        self.max_body_bytes = max_body_bytes
        self._secrets = tuple(secrets)
        self._sink = sink
        self._clock = clock
        self._timer = timer

    def handle(self, headers: t.Mapping[str, str], body: bytes) -> Reply:
        """The reply to one ``POST /webhook`` with these headers and this raw body."""
        if len(body) > self.max_body_bytes:
            return Reply(413, Result.TOO_LARGE, f"the body is over {self.max_body_bytes} bytes")
        lower = {name.lower(): value for name, value in headers.items()}
        failure = signature_failure(body, lower.get(SIGNATURE_HEADER), self._secrets)
        if failure is not None:
            return Reply(401, Result.UNAUTHORIZED, "missing or wrong X-Hub-Signature-256", signature_failure=failure)
        event = lower.get(EVENT_HEADER, "").strip()
        if not _NAME_RE.fullmatch(event):
            return Reply(400, Result.INVALID, "X-GitHub-Event must name a GitHub event", event="invalid")
        delivery_id = lower.get(DELIVERY_HEADER)
        if delivery_id is not None and not _DELIVERY_RE.fullmatch(delivery_id):
            return Reply(400, Result.INVALID, "X-GitHub-Delivery must be a delivery GUID", event=event)
        try:
            payload = parse_body(body, lower.get("content-type"))
        except JobDocumentError as exc:
            return Reply(400, Result.INVALID, str(exc), event=event, delivery_id=delivery_id)
        raw_action = payload.get("action")
        action = raw_action if isinstance(raw_action, str) and _NAME_RE.fullmatch(raw_action) else ""
        reply = _ReplyMaker(event, action, delivery_id)
        if event == "ping":
            return reply(200, Result.PONG, "pong")
        if event != "workflow_job":
            return reply(202, Result.IGNORED, f"{event} events are not routed")
        if action not in ROUTED_ACTIONS:
            return reply(202, Result.IGNORED, f"workflow_job action {raw_action!r} is not routed"[:200])
        return self._route(payload, lower.get(ENTERPRISE_HOST_HEADER), reply)

    def _route(self, payload: t.Dict[str, t.Any], enterprise_host: t.Optional[str], reply: _ReplyMaker) -> Reply:
        workflow_job = payload.get("workflow_job")
        labels = workflow_job.get("labels") if isinstance(workflow_job, dict) else None
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            return reply(400, Result.INVALID, "workflow_job.labels: must be a list of strings")
        route = select_pool(self.routes, labels, payload)
        if route is None:
            shown = ", ".join(labels)[:200]
            return reply(202, Result.UNMATCHED, f"no pool serves a job with labels [{shown}]")
        try:
            job = job_from_workflow_job(
                payload,
                pool=route.pool,
                now=self._clock(),
                api_host=delivery_api_host(payload, enterprise_host),
                delivery_id=reply.delivery_id,
            )
        except JobDocumentError as exc:
            return reply(400, Result.INVALID, str(exc)[:300], pool=route.pool)
        started = self._timer()
        try:
            outcome = self._sink.enqueue(job)
        except QueueError as exc:
            return reply(503, Result.UNAVAILABLE, f"the job queue is unavailable: {str(exc)[:300]}", job=job)
        return reply(200, _ENQUEUED[outcome], outcome.value, job=job, enqueue_seconds=self._timer() - started)


@dataclasses.dataclass(frozen=True)
class _ReplyMaker:
    """Replies about one verified delivery."""

    event: str
    action: str
    delivery_id: t.Optional[str]

    def __call__(
        self,
        status: int,
        result: Result,
        message: str,
        *,
        job: t.Optional[Job] = None,
        pool: t.Optional[str] = None,
        enqueue_seconds: t.Optional[float] = None,
    ) -> Reply:
        return Reply(
            status,
            result,
            message,
            event=self.event,
            action=self.action,
            delivery_id=self.delivery_id,
            job_id=None if job is None else job.id,
            pool=job.pool if job is not None else pool,
            enqueue_seconds=enqueue_seconds,
        )
