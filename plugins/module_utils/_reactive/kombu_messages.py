# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Migration from kombu queues: drain the `messages` collection of older webhook routers into jobs.

The github-runner-webhook-router puts one message per queued job into a kombu queue
named after the flavor, through kombu's MongoDB transport: a document
``{_id: ObjectId, queue: "<flavor>", priority, payload: "<JSON envelope>"}`` whose
envelope carries the body (base64 when `properties.body_encoding` says so) and its
content type. The body is JSON ``{"labels": [...], "status": "queued", "url": "<job API URL>"}``,
sometimes JSON-encoded twice (a string body sent with the JSON serializer).

Draining never loses a message: a message is deleted only after its job was upserted
(the upsert is idempotent, so a drain interrupted between the two repeats harmlessly),
and a message that cannot be converted is moved, with the reason, into a separate
collection instead of being dropped. Several drains may run at once.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import functools
import json
import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.job import (
    Job,
    JobDocumentError,
    bounded_error,
    new_job,
    parse_api_host,
    parse_job_url,
    to_stored_time,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.mongo import is_duplicate_key
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import JobQueue

DEFAULT_MESSAGES_COLLECTION = "messages"
DEFAULT_REJECTED_COLLECTION = "messages.rejected"
MAX_PAYLOAD_BYTES = 64 * 1024  # a real message is a few hundred bytes


@dataclasses.dataclass(frozen=True)
class RejectedMessage:
    id: str
    reason: str


@dataclasses.dataclass(frozen=True)
class DrainReport:
    converted: int = 0
    rejected: t.Tuple[RejectedMessage, ...] = ()


def read_envelope(message: t.Mapping[str, t.Any]) -> t.Dict[str, t.Any]:
    """The kombu message (envelope) in a transport document; JobDocumentError naming what is wrong."""
    payload = message.get("payload")
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8", errors="replace")
    if not isinstance(payload, str):
        raise JobDocumentError("payload", "must be the JSON text of a kombu message")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise JobDocumentError("payload", f"{len(payload)} bytes, at most {MAX_PAYLOAD_BYTES} are accepted")
    try:
        envelope = json.loads(payload)
    except ValueError as exc:
        raise JobDocumentError("payload", f"is not JSON: {exc}") from None
    if not isinstance(envelope, dict):
        raise JobDocumentError("payload", "must be a JSON object (a kombu message)")
    return envelope


def decode_body(envelope: t.Mapping[str, t.Any]) -> t.Any:
    """The body of a kombu message, decoded as its properties and content encoding say."""
    body = envelope.get("body")
    properties = envelope.get("properties")
    if isinstance(properties, dict) and properties.get("body_encoding") == "base64":
        if not isinstance(body, str):
            raise JobDocumentError("payload.body", "must be base64 text")
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise JobDocumentError("payload.body", "is not valid base64") from None
    elif isinstance(body, str):
        raw = body.encode("utf-8")
    else:
        raise JobDocumentError("payload.body", "must be text")
    encoding = str(envelope.get("content-encoding") or "utf-8")
    try:
        text = raw.decode(encoding)
    except (LookupError, UnicodeDecodeError):
        raise JobDocumentError("payload.body", f"cannot be decoded as {encoding}") from None
    try:
        decoded = json.loads(text)
        if isinstance(decoded, str):  # a JSON string sent through the JSON serializer: encoded twice
            decoded = json.loads(decoded)
    except ValueError as exc:
        raise JobDocumentError("payload.body", f"is not JSON: {exc}") from None
    return decoded


def job_from_message(
    message: t.Mapping[str, t.Any],
    *,
    pool: str,
    received_at: datetime.datetime,
    now: datetime.datetime,
    api_host: t.Optional[str] = None,
) -> Job:
    """The job document for one kombu message; `api_host`, when given, is the only host accepted."""
    envelope = read_envelope(message)
    body = decode_body(envelope)
    if not isinstance(body, dict):
        raise JobDocumentError("payload.body", "must be a JSON object with labels, status and url")
    key = parse_job_url(body.get("url"), path="body.url")
    if api_host is not None and key.api_host != parse_api_host(api_host):
        raise JobDocumentError("body.url", f"names host {key.api_host}, not the GitHub at {api_host}")
    labels = body.get("labels")
    if not isinstance(labels, list):
        raise JobDocumentError("body.labels", "must be a list")
    properties = envelope.get("properties")
    delivery_tag = properties.get("delivery_tag") if isinstance(properties, dict) else None
    try:
        return new_job(
            key,
            pool=pool,
            labels=labels,
            status=body.get("status"),
            now=now,
            received_at=received_at,
            delivery_id=f"kombu:{delivery_tag}" if isinstance(delivery_tag, str) else None,
        )
    except JobDocumentError as exc:
        field = exc.field if exc.field in ("pool", "delivery_ids") else f"body.{exc.field}"
        raise JobDocumentError(field, exc.message) from None


def drain(
    queue: JobQueue,
    *,
    database: str,
    pools_by_queue: t.Mapping[str, str],
    messages_collection: str = DEFAULT_MESSAGES_COLLECTION,
    rejected_collection: str = DEFAULT_REJECTED_COLLECTION,
    api_host: t.Optional[str] = None,
    limit: int = 1000,
) -> DrainReport:
    """Move up to `limit` messages of the kombu queues in `pools_by_queue` (queue name -> pool) into jobs.

    Messages of other queues are left alone. Raises QueueError when MongoDB fails; what was
    drained until then stays drained, and the rest stays in `messages`.
    """
    messages = queue.mongo.collection(database, messages_collection)
    rejected = queue.mongo.collection(database, rejected_collection)
    where = f"{database}.{messages_collection}"
    batch = queue.mongo.call(
        f"listing messages in {where}",
        lambda: list(
            messages.find({"queue": {"$in": sorted(pools_by_queue)}}).sort([("priority", 1), ("_id", 1)]).limit(limit)
        ),
    )
    converted = 0
    refused: t.List[RejectedMessage] = []
    for message in batch:
        now = to_stored_time(queue.clock())
        generated = getattr(message.get("_id"), "generation_time", None)  # an ObjectId says when it was made
        received_at = generated if isinstance(generated, datetime.datetime) else now
        try:
            job = job_from_message(
                message,
                pool=pools_by_queue[str(message.get("queue"))],
                received_at=received_at,
                now=now,
                api_host=api_host,
            )
        except JobDocumentError as exc:
            reason = bounded_error(str(exc))
            queue.mongo.call(
                f"moving message {message['_id']} to {database}.{rejected_collection}",
                functools.partial(_move_aside, messages, rejected, message, reason, now),
            )
            refused.append(RejectedMessage(str(message["_id"]), reason))
            continue
        queue.enqueue(job)  # first the job ...
        queue.mongo.call(
            f"deleting message {message['_id']} from {where}",
            functools.partial(messages.delete_one, {"_id": message["_id"]}),
        )
        converted += 1  # ... then the message
    return DrainReport(converted, tuple(refused))


def _move_aside(
    messages: t.Any, rejected: t.Any, message: t.Mapping[str, t.Any], reason: str, now: datetime.datetime
) -> None:
    try:
        rejected.insert_one({**message, "reason": reason, "rejected_at": now})
    except Exception as exc:
        if not is_duplicate_key(exc):  # already moved by another drain
            raise
    messages.delete_one({"_id": message["_id"]})
