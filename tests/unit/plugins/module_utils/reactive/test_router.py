"""The webhook router's request handling, over an in-memory job queue."""

from __future__ import annotations

import datetime
import json
import typing as t
import urllib.parse

import jmespath
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.job import JobStatus
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.router import (
    PoolRoute,
    Result,
    SignatureFailure,
    WebhookRouter,
    select_pool,
    sign,
    signature_failure,
)
from tests.unit.plugins.module_utils.fakes import NOW, MemoryJobSink

SECRET = b"It's a Secret to Everybody"
OLD_SECRET = b"the secret before the rotation"


def payload(action: str = "queued", job_id: int = 42, labels: t.Sequence[str] = ("self-hosted", "small"), **job: t.Any):
    return {
        "action": action,
        "workflow_job": {
            "id": job_id,
            "run_id": 7,
            "url": f"https://api.github.com/repos/Octo/Hello/actions/jobs/{job_id}",
            "labels": list(labels),
            "runner_name": None,
            "started_at": "2026-01-01T11:59:00Z",
            "completed_at": None,
            **job,
        },
        "repository": {"full_name": "Octo/Hello", "owner": {"login": "Octo"}},
    }


def route(pool: str, labels: t.Sequence[str], priority: int = 0, match: str | None = None) -> PoolRoute:
    return PoolRoute(pool, tuple(labels), priority, match, None if match is None else jmespath.compile(match))


ROUTES = (route("small", ["linux", "small"]), route("large", ["linux", "large"]))


def make_router(
    sink: MemoryJobSink | None = None, routes: t.Sequence[PoolRoute] = ROUTES, **kwargs: t.Any
) -> tuple[WebhookRouter, MemoryJobSink]:
    sink = sink or MemoryJobSink()
    return WebhookRouter(routes, [OLD_SECRET, SECRET], sink, clock=lambda: NOW, **kwargs), sink


def headers(body: bytes, event: str = "workflow_job", secret: bytes | None = SECRET, **extra: str) -> dict[str, str]:
    out = {"X-GitHub-Event": event, "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
    if secret is not None:
        out["X-Hub-Signature-256"] = sign(body, secret)
    out.update(extra)
    return out


def deliver(router: WebhookRouter, body: t.Any, event: str = "workflow_job", **kwargs: t.Any):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return router.handle(headers(raw, event, **kwargs), raw)


# --- signatures -----------------------------------------------------------------------------


def test_signature_of_githubs_documentation() -> None:
    # The example of GitHub's "Validating webhook deliveries".
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert sign(b"Hello, World!", SECRET) == expected
    assert signature_failure(b"Hello, World!", expected, [SECRET]) is None
    assert signature_failure(b"Hello, World!", expected.upper().replace("SHA256", "sha256"), [SECRET]) is None


@pytest.mark.parametrize(
    ("header", "failure"),
    [
        (None, SignatureFailure.MISSING),
        ("", SignatureFailure.MALFORMED),
        ("sha1=" + "0" * 40, SignatureFailure.MALFORMED),
        ("sha256=" + "0" * 63, SignatureFailure.MALFORMED),
        ("sha256=" + "z" * 64, SignatureFailure.MALFORMED),
        ("sha256=" + "0" * 64, SignatureFailure.MISMATCH),
        (sign(b"Hello, World?", SECRET), SignatureFailure.MISMATCH),
    ],
)
def test_bad_signatures(header: str | None, failure: SignatureFailure) -> None:
    assert signature_failure(b"Hello, World!", header, [SECRET]) is failure


def test_every_secret_of_a_rotation_is_accepted() -> None:
    router, sink = make_router()
    assert deliver(router, payload(job_id=1), secret=OLD_SECRET).status == 200
    assert deliver(router, payload(job_id=2), secret=SECRET).status == 200
    assert deliver(router, payload(job_id=3), secret=b"another").status == 401
    assert sorted(job.job_id for job in sink.jobs.values()) == [1, 2]


@pytest.mark.parametrize("secret", [None, b"wrong"])
def test_an_unsigned_or_wrongly_signed_delivery_is_refused_before_anything_is_read(secret: bytes | None) -> None:
    router, sink = make_router()
    for body in (payload(), b"not json at all", b"\xff\xfe"):
        reply = deliver(router, body, secret=secret)
        assert (reply.status, reply.result, reply.event, reply.action) == (401, Result.UNAUTHORIZED, "", "")
    assert sink.calls == 0


def test_a_body_over_the_limit_is_refused() -> None:
    router, sink = make_router(max_body_bytes=2048)
    body = json.dumps(payload(padding="x" * 2048)).encode()
    assert deliver(router, body).status == 413
    assert sink.calls == 0


# --- events -----------------------------------------------------------------------------------


def test_ping_is_answered_and_other_events_are_ignored() -> None:
    router, sink = make_router()
    assert (deliver(router, {"zen": "Keep it simple."}, "ping").status, sink.calls) == (200, 0)
    reply = deliver(router, {"action": "created", "ref": "main"}, "push")
    assert (reply.status, reply.result, reply.event, reply.action) == (202, Result.IGNORED, "push", "created")
    reply = deliver(router, payload(action="requested"))
    assert (reply.status, reply.result) == (202, Result.IGNORED)
    assert sink.calls == 0


@pytest.mark.parametrize(
    ("body", "extra"),
    [
        (b"{", {}),
        (b"[1, 2]", {}),
        (b"\xff", {}),
        (b"[" * 100_000, {}),
        (b"payload=%7B", {"Content-Type": "application/x-www-form-urlencoded"}),
        (b"a=1&b=2", {"Content-Type": "application/x-www-form-urlencoded"}),
    ],
)
def test_a_signed_body_that_is_not_a_json_object_is_a_400(body: bytes, extra: dict[str, str]) -> None:
    router, sink = make_router()
    reply = deliver(router, body, **extra)
    assert (reply.status, reply.result) == (400, Result.INVALID)
    assert sink.calls == 0


def test_a_form_encoded_delivery() -> None:
    router, _sink = make_router()
    body = urllib.parse.urlencode({"payload": json.dumps(payload())}).encode()
    reply = deliver(router, body, **{"Content-Type": "application/x-www-form-urlencoded"})
    assert (reply.status, reply.result) == (200, Result.INSERTED)


@pytest.mark.parametrize(
    ("extra", "event"),
    [({}, "Workflow Job"), ({}, ""), ({"X-GitHub-Delivery": "x" * 101}, "workflow_job")],
)
def test_bad_headers_of_a_signed_delivery_are_a_400(extra: dict[str, str], event: str) -> None:
    router, sink = make_router()
    assert deliver(router, payload(), event, **extra).status == 400
    assert sink.calls == 0


# --- routing ----------------------------------------------------------------------------------


def test_a_queued_job_goes_to_the_pool_that_has_its_labels() -> None:
    router, sink = make_router()
    reply = deliver(router, payload(labels=["self-hosted", "Linux", "X64", "LARGE"]))
    assert (reply.status, reply.result, reply.pool) == (200, Result.INSERTED, "large")
    job = sink.jobs[reply.job_id or ""]
    assert (job.id, job.pool, job.status, job.labels) == (
        "api.github.com/octo/hello/42",
        "large",
        JobStatus.QUEUED,
        ("self-hosted", "Linux", "X64", "LARGE"),
    )
    assert job.delivery_ids == ("72d3162e-cc78-11e3-81ab-4c9367dc0958",)


def test_unmatched_jobs_are_counted_and_not_enqueued() -> None:
    router, sink = make_router()
    for labels in (["ubuntu-latest"], ["self-hosted", "small", "gpu"], ["windows", "small"]):
        reply = deliver(router, payload(labels=labels))
        assert (reply.status, reply.result) == (202, Result.UNMATCHED)
    assert sink.calls == 0


def test_an_architecture_a_pool_lists_must_match() -> None:
    routes = [route("x64", ["linux", "x64", "small"]), route("arm", ["linux", "arm64", "small"])]
    router, _sink = make_router(routes=routes)
    assert deliver(router, payload(labels=["self-hosted", "ARM64", "small"])).pool == "arm"
    assert deliver(router, payload(job_id=43, labels=["small"])).pool == "x64"


def test_the_first_matching_pool_by_priority_wins() -> None:
    routes = [
        route("general", ["linux", "small"]),
        route("octo", ["linux", "small"], priority=10, match="repository.owner.login == 'Octo'"),
        route("other", ["linux", "small"], priority=10, match="repository.owner.login == 'Other'"),
    ]
    router, _sink = make_router(routes=routes)
    assert [r.pool for r in router.routes] == ["octo", "other", "general"]
    assert deliver(router, payload()).pool == "octo"
    other = payload(job_id=43)
    other["repository"]["owner"]["login"] = "Elsewhere"
    assert deliver(router, other).pool == "general"


def test_a_match_expression_that_fails_on_a_payload_does_not_match() -> None:
    failing = route("strict", ["small"], match="contains(repository.topics, 'ci')")  # topics is absent: null
    assert select_pool([failing], ["small"], payload()) is None
    assert select_pool([failing, route("small", ["small"])], ["small"], payload()).pool == "small"  # type: ignore[union-attr]


def test_a_job_with_bad_fields_is_a_400_naming_the_field() -> None:
    router, sink = make_router()
    reply = deliver(router, payload(id="42"))
    assert (reply.status, reply.result) == (400, Result.INVALID)
    assert "workflow_job.id" in reply.message
    bad = payload()
    bad["workflow_job"]["labels"] = "small"
    assert deliver(router, bad).status == 400
    assert sink.calls == 0


# --- the document over a job's life -------------------------------------------------------------


def test_status_moves_forward_with_runner_and_times_and_duplicates_change_nothing() -> None:
    router, sink = make_router()
    assert deliver(router, payload("waiting")).result is Result.INSERTED
    assert deliver(router, payload("queued")).result is Result.UPDATED
    assert deliver(router, payload("queued")).result is Result.DUPLICATE
    running = payload("in_progress", runner_name="ci1-small-0123456789ab", started_at="2026-01-01T12:00:05Z")
    assert deliver(router, running).result is Result.UPDATED
    done = payload(
        "completed",
        runner_name="ci1-small-0123456789ab",
        started_at="2026-01-01T12:00:05Z",
        completed_at="2026-01-01T12:03:00Z",
    )
    assert deliver(router, done).result is Result.UPDATED
    assert deliver(router, payload("queued")).result is Result.DUPLICATE  # late: changes nothing
    job = sink.jobs["api.github.com/octo/hello/42"]
    assert (job.status, job.runner_name) == (JobStatus.COMPLETED, "ci1-small-0123456789ab")
    assert (job.started_at, job.completed_at) == (
        datetime.datetime(2026, 1, 1, 12, 0, 5, tzinfo=datetime.UTC),
        datetime.datetime(2026, 1, 1, 12, 3, tzinfo=datetime.UTC),
    )


def test_ghes_deliveries_are_keyed_by_their_host() -> None:
    router, sink = make_router()
    ghes = payload(url="https://ghes.example.com/api/v3/repos/Octo/Hello/actions/jobs/42")
    reply = deliver(router, ghes, **{"X-GitHub-Enterprise-Host": "GHES.example.com"})
    assert (reply.status, reply.job_id) == (200, "ghes.example.com/octo/hello/42")
    assert deliver(router, payload()).job_id == "api.github.com/octo/hello/42"
    assert len(sink.jobs) == 2
    # Without the header the host of the signed job URL keys it (GHES, or GitHub's own).
    assert deliver(router, ghes).job_id == "ghes.example.com/octo/hello/42"
    # A header that disagrees with the job URL of the payload is refused, not keyed elsewhere.
    reply = deliver(router, payload(job_id=50), **{"X-GitHub-Enterprise-Host": "ghes.example.com"})
    assert (reply.status, reply.result) == (400, Result.INVALID)


def test_a_queue_failure_is_a_503_and_the_redelivery_is_stored() -> None:
    router, sink = make_router()
    sink.down = True
    reply = deliver(router, payload())
    assert (reply.status, reply.result) == (503, Result.UNAVAILABLE)
    sink.down = False
    assert deliver(router, payload()).result is Result.INSERTED


# --- fuzzing ----------------------------------------------------------------------------------

_header_text = st.text(st.characters(codec="latin-1", exclude_categories=["Cc"]), max_size=80)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[dict[str, str], bytes, bool]:
    """Headers and a body; the flag says whether the signature is valid."""
    body = draw(
        st.one_of(
            st.binary(max_size=300),
            _json.map(lambda value: json.dumps(value).encode()),
            st.builds(
                lambda base, action, labels, job_id: json.dumps(
                    payload(action, job_id, labels) if base else {"action": action, "workflow_job": labels}
                ).encode(),
                st.booleans(),
                st.sampled_from(["queued", "waiting", "in_progress", "completed", "requested", ""]),
                st.lists(st.sampled_from(["small", "large", "linux", "x64", "gpu", "self-hosted"]), max_size=4),
                st.integers(min_value=-1, max_value=2**64),
            ),
        )
    )
    names = ["X-GitHub-Event", "X-GitHub-Delivery", "X-GitHub-Enterprise-Host", "Content-Type", "X-Hub-Signature-256"]
    out = draw(st.dictionaries(st.sampled_from(names), _header_text, max_size=5))
    signed = draw(st.booleans())
    if signed:
        out["X-Hub-Signature-256"] = sign(body, SECRET)
        out.setdefault("X-GitHub-Event", draw(st.sampled_from(["workflow_job", "ping", "push"])))
    return out, body, signed


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deliveries())
def test_fuzzed_deliveries_get_a_4xx_or_2xx_and_only_signed_ones_write(
    delivery: tuple[dict[str, str], bytes, bool],
) -> None:
    headers_, body, signed = delivery
    router, sink = make_router()
    reply = router.handle(headers_, body)
    assert reply.status in {200, 202, 400, 401}
    assert json.dumps(reply.body())
    if not signed:
        assert (reply.status, sink.calls) == (401, 0)
    if sink.calls:
        assert reply.status == 200
