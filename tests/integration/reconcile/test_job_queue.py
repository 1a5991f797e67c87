"""github_runner_pool with job_queue: pools sized for the jobs no consumer served, backfills, MongoDB failures.

ansible-playbook runs the module against the sandbox; the queue is the test MongoDB server's.
"""

from __future__ import annotations

import contextlib
import datetime
import socket
import struct
import threading
import time
import typing as t
import urllib.parse

import pymongo.uri_parser
import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.job import JobKey, new_job
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import JobQueue
from tests.integration.reactive.claimers import open_queue
from tests.integration.reconcile.conftest import Ansible, Core, pool_dict
from tests.integration.reconcile.test_reconcile import reconcile_until, served
from tests.sandbox.mongo import MongoServer

UTC = datetime.UTC
LONG_AGO = datetime.timedelta(minutes=10)


@pytest.fixture
def queue(mongodb: MongoServer, database: str) -> t.Iterator[JobQueue]:
    """The test database's queue, as the router and the consumer see it."""
    opened = open_queue(mongodb.uri, database, "consumer-a")
    opened.ensure_indexes()
    yield opened
    opened.mongo.close()


def put(queue: JobQueue, pool: str, job_id: int, *, age: datetime.timedelta) -> str:
    """A queued job of `pool`, received `age` ago (as the router would have stored it); its id."""
    now = datetime.datetime.now(UTC)
    key = JobKey("api.github.com", f"octo/{pool}", job_id)
    job = new_job(key, pool=pool, labels=["self-hosted"], status="queued", now=now, received_at=now - age)
    queue.enqueue(job)
    return job.id


def queue_args(mongodb: MongoServer, database: str, pool: dict[str, t.Any], **extra: t.Any) -> dict[str, t.Any]:
    return {
        "controller_id": "itq",
        "pools": [pool],
        "mongodb_uri": mongodb.uri,
        "mongodb_database": database,
        "job_queue": True,
        **extra,
    }


def empty(ansible: Ansible, args: dict[str, t.Any]) -> None:
    ansible.run("github_runner_pool", {**args, "state": "absent", "force": True})


def test_jobs_past_the_grace_size_the_pool_and_younger_ones_are_the_consumers(
    sandbox: t.Any, ansible: Ansible, mongodb: MongoServer, database: str, queue: JobQueue
) -> None:
    pool = pool_dict(sandbox, min_idle=0, max_runners=10)
    name = pool["name"]
    put(queue, name, 1, age=LONG_AGO)
    put(queue, name, 2, age=LONG_AGO)
    put(queue, name, 3, age=datetime.timedelta(seconds=0))  # young: the consumer's to spawn
    put(queue, name, 4, age=datetime.timedelta(seconds=0))
    # Old, but held by a consumer under a live lease: served, not counted.
    held = put(queue, name, 5, age=LONG_AGO)
    assert claim_job(queue, name, held, lease_ttl=3600) is not None
    # Old, claimed by a consumer that crashed: its lease expired, so nobody serves it; counted.
    crashed = put(queue, name, 6, age=LONG_AGO)
    assert claim_job(queue, name, crashed, lease_ttl=0.2) is not None
    wait_until("the crashed claim's lease expires", lambda: lease_expired(queue, crashed))
    args = queue_args(mongodb, database, pool, job_queue_grace="1m")

    checked = ansible.run("github_runner_pool", args, check=True).result
    assert checked["job_queue"]["pools"][name]["queued"] == 3
    assert checked["pools"][0]["plan"]["create"] == 3

    result = ansible.run("github_runner_pool", args).result
    assert result["job_queue"] == {
        "counted": True,
        "pools": {name: {"queued": 3, "sized_for": 3, "backfill": None}},
    }
    assert result["pools"][0]["plan"]["desired"] == 3
    assert len(result["pools"][0]["created"]) == 3
    assert "queued_jobs" not in result  # the queue alone asks GitHub for nothing
    empty(ansible, args)


def test_a_job_counts_until_the_consumer_marks_it_spawned(
    sandbox: t.Any, ansible: Ansible, mongodb: MongoServer, database: str, queue: JobQueue
) -> None:
    pool = pool_dict(sandbox, min_idle=0, max_runners=5)
    name = pool["name"]
    job_id = put(queue, name, 1, age=LONG_AGO)
    args = queue_args(mongodb, database, pool, job_queue_grace=30)
    first = ansible.run("github_runner_pool", args).result
    assert first["job_queue"]["pools"][name]["queued"] == 1
    assert len(first["pools"][0]["created"]) == 1
    # A consumer serves it after all (say it came back): once spawned, the job no longer counts.
    lease = claim_job(queue, name, job_id, lease_ttl=3600)
    assert lease is not None
    queue.mark_spawned(lease, "itq-job-runner")
    again = ansible.run("github_runner_pool", args).result
    assert again["job_queue"]["pools"][name] == {"queued": 0, "sized_for": 0, "backfill": None}
    assert again["pools"][0]["created"] == []
    assert again["pools"][0]["plan"]["desired"] == 0
    empty(ansible, args)


def test_backfill_puts_a_job_github_queued_into_the_queue_once(
    sandbox: t.Any, ansible: Ansible, core: Core, mongodb: MongoServer, database: str, queue: JobQueue
) -> None:
    label = f"backfill{time.monotonic_ns() % 10**9}"
    pool = pool_dict(sandbox, labels=["self-hosted", label], min_idle=0, max_runners=3)
    repo = sandbox.env["GITHUB_REPOSITORY"]
    posted = sandbox.control.post("/jobs", {"repository": repo, "labels": ["self-hosted", label], "duration": 0.2})
    # A job that no pool of the run can take is not enqueued.
    other = sandbox.control.post(
        "/jobs", {"repository": repo, "labels": ["self-hosted", label, "other"], "duration": 0.2}
    )
    args = queue_args(mongodb, database, pool, job_queue_backfill=True)
    host = urllib.parse.urlsplit(sandbox.env["GITHUB_API_URL"]).netloc.lower()
    job_id = f"{host}/{repo.lower()}/{posted['jobs'][0]['id']}"
    other_id = f"{host}/{repo.lower()}/{other['jobs'][0]['id']}"

    checked = ansible.run("github_runner_pool", args, check=True).result
    assert checked["job_queue"]["pools"][pool["name"]]["backfill"] is None
    assert queue.get(job_id) is None  # check mode reads, never writes

    first = ansible.run("github_runner_pool", args).result
    assert first["job_queue"]["pools"][pool["name"]]["backfill"] == {"inserted": 1, "updated": 0, "unchanged": 0}
    stored = queue.get(job_id)
    assert stored is not None
    assert (stored.pool, stored.status.value, stored.labels) == (pool["name"], "queued", ("self-hosted", label))
    assert queue.get(other_id) is None
    # Received now: the consumer's for the grace, so this run creates nothing for it.
    assert first["job_queue"]["pools"][pool["name"]]["queued"] == 0
    assert first["pools"][0]["created"] == []

    second = ansible.run("github_runner_pool", args).result
    assert second["job_queue"]["pools"][pool["name"]]["backfill"] == {"inserted": 0, "updated": 0, "unchanged": 1}
    assert queue.get(job_id) == stored

    # Serve both jobs, so that no later test finds them queued.
    wide = {**pool, "labels": ["self-hosted", label, "other"]}
    ours = {posted["jobs"][0]["id"], other["jobs"][0]["id"]}

    def both_done() -> bool:
        jobs = [j for j in served(sandbox, repo) if j["id"] in ours]
        return len(jobs) == 2 and all(j["status"] == "completed" for j in jobs)

    reconcile_until(core, wide, both_done, count_queued_jobs=True)
    core.reconcile([wide], mode="absent", force=True)


def test_mongodb_failing_while_counting_does_not_fail_the_run(
    sandbox: t.Any, ansible: Ansible, mongodb: MongoServer, database: str, queue: JobQueue
) -> None:
    pool = pool_dict(sandbox, min_idle=1, max_runners=5)
    put(queue, pool["name"], 1, age=LONG_AGO)
    proxy = QueueCutProxy(mongodb.uri)
    with proxy as proxied:
        # The pool leases pass; the queue's connections are cut, as when MongoDB fails after the lease.
        args = queue_args(mongodb, database, pool, mongodb_uri=proxied, mongodb_timeout=2, job_queue_backfill=True)
        result = ansible.run("github_runner_pool", args).result
        assert result["job_queue"]["counted"] is False
        assert result["job_queue"]["pools"][pool["name"]]["queued"] is None
        assert result["pools"][0]["plan"]["desired"] == 1  # sized without the queue: min_idle
        assert len(result["pools"][0]["created"]) == 1
        assert any("job_queue: the queued jobs in MongoDB were not counted" in w for w in result["warnings"])
        empty(ansible, {**args, "job_queue": False})
    assert proxy.cut > 0  # the queue did try, and failed


# Helpers ---------------------------------------------------------------------------------------


def claim_job(queue: JobQueue, pool: str, job_id: str, *, lease_ttl: float) -> t.Any:
    """Claim `job_id` as a consumer would (other jobs claimed on the way are released at once)."""
    claimer = JobQueue(queue.mongo, database=queue.database, owner=f"consumer-{lease_ttl}", lease_ttl=lease_ttl)
    for _round in range(20):
        result = claimer.claim([pool], limit=10)
        found = None
        for lease in result.leases:
            if lease.job.id == job_id:
                found = lease
            else:
                claimer.release(lease, "not this one", delay=0)
        if found is not None:
            return found
    return None


def lease_expired(queue: JobQueue, job_id: str) -> bool:
    job = queue.get(job_id)
    return job is not None and job.lease_until is not None and job.lease_until < datetime.datetime.now(UTC)


def wait_until(what: str, predicate: t.Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


class QueueCutProxy:
    """A TCP proxy to the MongoDB server that closes the connections of the reconcile's job queue.

    Every pymongo connection starts with a handshake that names the client's application: the
    queue's (``selfhosted.github_runners.queue``) is cut, the pool leases' pass. Yields the URI.
    """

    CUT = b"selfhosted.github_runners.queue\x00"

    def __init__(self, uri: str) -> None:
        parsed = pymongo.uri_parser.parse_uri(uri)
        if len(parsed["nodelist"]) != 1 or "replicaset" in {k.lower() for k in parsed["options"]}:
            pytest.skip("the proxy fronts a single MongoDB server")
        self.upstream = parsed["nodelist"][0]
        self.uri = uri
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.stopped = threading.Event()
        self.cut = 0

    def __enter__(self) -> str:
        threading.Thread(target=self._accept, daemon=True).start()
        host, port = self.upstream
        return self.uri.replace(f"{host}:{port}", f"127.0.0.1:{self.listener.getsockname()[1]}", 1)

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _addr = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with contextlib.closing(client):
            first = _read_message(client)
            if first is None or self.CUT in first:
                self.cut += 1
                return
            with contextlib.closing(socket.create_connection(self.upstream, timeout=10)) as server:
                server.sendall(first)
                back = threading.Thread(target=_pipe, args=(server, client), daemon=True)
                back.start()
                _pipe(client, server)
                back.join(timeout=5)


def _read_message(sock: socket.socket) -> bytes | None:
    """One whole wire-protocol message (its int32 length first), None when the peer closed."""
    data = b""
    while len(data) < 4 or len(data) < struct.unpack("<i", data[:4])[0]:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    return data


def _pipe(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            target.sendall(chunk)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)
