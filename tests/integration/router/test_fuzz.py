"""Fuzzed headers, bodies and raw requests against the running service.

No answer is a 5xx except 503 while MongoDB is down, the process survives, and nothing is
written without a valid signature.
"""

from __future__ import annotations

import json
import pathlib
import socket
import typing as t

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.router import sign
from tests.integration.router.service import SECRET, RouterProcess, running, write_config
from tests.integration.router.test_load import workflow_job
from tests.sandbox.mongo import MongoServer, free_port

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))

_header_value = st.text(st.characters(codec="latin-1", exclude_characters="\r\n\x00"), max_size=100).map(str.strip)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=25,
)


@st.composite
def mutated_workflow_job(draw: st.DrawFn) -> bytes:
    """A workflow_job payload with some fields replaced by anything JSON."""
    payload = workflow_job(
        draw(st.integers(min_value=1, max_value=10**6)), draw(st.sampled_from(["queued", "completed", "x"]))
    )
    job = payload["workflow_job"]
    for field in draw(
        st.lists(st.sampled_from(["id", "run_id", "url", "labels", "runner_name", "started_at"]), max_size=3)
    ):
        job[field] = draw(_json)
    if draw(st.booleans()):
        payload["repository"] = draw(_json)
    return json.dumps(payload).encode()


_bodies = st.one_of(st.binary(max_size=400), _json.map(lambda v: json.dumps(v).encode()), mutated_workflow_job())
_headers = st.dictionaries(
    st.sampled_from(
        [
            "X-GitHub-Event",
            "X-GitHub-Delivery",
            "X-GitHub-Enterprise-Host",
            "Content-Type",
            "X-Hub-Signature-256",
            "X-Other",
        ]
    ),
    _header_value,
    max_size=6,
)


def post(router: RouterProcess, headers: dict[str, str], body: bytes) -> int:
    """The status; 0 for aiohttp's own 400 to a request its HTTP parser refuses (a bad header value)."""
    client = router.client()
    try:
        answer = client.request("POST", "/webhook", body, headers)
    finally:
        client.close()
    return 0 if answer.status == 400 and isinstance(answer.body, bytes) else answer.status


@pytest.fixture(scope="module")
def fuzz_router(
    tmp_path_factory: pytest.TempPathFactory, mongodb: MongoServer
) -> t.Iterator[tuple[RouterProcess, t.Any]]:
    import pymongo

    database = "ghr_router_fuzz"
    client: pymongo.MongoClient[dict[str, t.Any]] = pymongo.MongoClient(mongodb.uri, serverSelectionTimeoutMS=5000)
    client.drop_database(database)
    config = write_config(tmp_path_factory.mktemp("fuzz"), mongodb.uri, database, max_body_bytes=4096)
    with running(config) as process:
        yield process, client[database]["jobs"]
    assert process.process.returncode == 0, "\n".join(process.log[-20:])
    client.drop_database(database)
    client.close()


@FUZZ
@given(headers=_headers, body=_bodies)
def test_unsigned_or_badly_signed_requests_are_401_and_write_nothing(
    fuzz_router: tuple[RouterProcess, t.Any], headers: dict[str, str], body: bytes
) -> None:
    router, jobs = fuzz_router
    if headers.get("X-Hub-Signature-256") == sign(body, SECRET):  # hypothesis will not find it, but be sure
        headers["X-Hub-Signature-256"] = ""
    before = jobs.count_documents({})
    status = post(router, headers, body)
    assert status in (0, 401, 413), status
    assert jobs.count_documents({}) == before


@FUZZ
@given(headers=_headers, body=_bodies, event=st.sampled_from(["workflow_job", "ping", "push", None]))
def test_signed_fuzzed_requests_never_get_a_5xx(
    fuzz_router: tuple[RouterProcess, t.Any], headers: dict[str, str], body: bytes, event: str | None
) -> None:
    router, _jobs = fuzz_router
    headers["X-Hub-Signature-256"] = sign(body, SECRET)
    if event is not None:
        headers["X-GitHub-Event"] = event
    status = post(router, headers, body)
    assert status in (0, 200, 202, 400, 413), status


@FUZZ
@given(
    request=st.one_of(
        st.binary(max_size=600),
        st.builds(
            lambda method, path, lines, body: (
                b"%s %s HTTP/1.1\r\nHost: x\r\n%s\r\n\r\n%s" % (method, path, lines, body)
            ),
            st.sampled_from([b"POST", b"GET", b"PUT", b"BREW", b""]),
            st.sampled_from([b"/webhook", b"/healthz", b"/metrics", b"/", b"*", b"/webhook?x=%ff"]),
            st.binary(max_size=200),
            st.binary(max_size=200),
        ),
    )
)
def test_raw_bytes_never_crash_the_server(fuzz_router: tuple[RouterProcess, t.Any], request: bytes) -> None:
    router, jobs = fuzz_router
    before = jobs.count_documents({})
    with socket.create_connection(("127.0.0.1", router.port), timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    if answer:
        status = int(answer.split(b" ", 2)[1])
        assert status < 500, answer[:200]
    assert router.process.poll() is None
    assert jobs.count_documents({}) == before


def test_the_server_survived_the_fuzzing(fuzz_router: tuple[RouterProcess, t.Any]) -> None:
    router, _jobs = fuzz_router
    assert router.client().request("GET", "/healthz").status == 200
    assert not [line for line in router.log if "Traceback" in line or '"level": "error"' in line]
    assert any("bad HTTP request" in line for line in router.log)  # the parser's refusals, one line each


@pytest.fixture(scope="module")
def router_without_mongodb(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[RouterProcess]:
    unreachable = f"mongodb://127.0.0.1:{free_port()}/"  # nothing listens there
    config = write_config(
        tmp_path_factory.mktemp("down"), unreachable, "ghr_router_down", mongodb={"uri": unreachable, "timeout": 0.5}
    )
    with running(pathlib.Path(config)) as process:
        yield process


@FUZZ
@given(headers=_headers, body=_bodies, signed=st.booleans())
def test_while_mongodb_is_down_only_routed_jobs_get_a_503(
    router_without_mongodb: RouterProcess, headers: dict[str, str], body: bytes, signed: bool
) -> None:
    if signed:
        headers["X-Hub-Signature-256"] = sign(body, SECRET)
        headers["X-GitHub-Event"] = "workflow_job"
    status = post(router_without_mongodb, headers, body)
    assert status in ((0, 200, 202, 400, 413, 503) if signed else (0, 401, 413)), status


def test_while_mongodb_is_down_health_and_a_routed_job_are_503(router_without_mongodb: RouterProcess) -> None:
    client = router_without_mongodb.client()
    assert client.request("GET", "/healthz").status == 503
    answer = client.deliver(workflow_job(1))
    assert (answer.status, answer.body["result"]) == (503, "unavailable")
    assert client.deliver({"zen": "ok"}, "ping").status == 200  # what needs no MongoDB still works
    assert client.deliver(workflow_job(2), secret=None).status == 401
    assert router_without_mongodb.process.poll() is None
