"""Locks and limits of a reconcile against the sandbox and a real MongoDB-compatible server."""

from __future__ import annotations

import threading
import time
import typing as t
import uuid

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import LockError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._lock import MongoLease
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reconcile import ReconcileOptions, Reconciler
from tests.integration.reconcile.conftest import Core, pool_dict
from tests.sandbox.mongo import MongoServer

pytestmark = pytest.mark.sandbox


class RecordingLease(MongoLease):
    """A MongoLease that notes when it was acquired and when its release began (monotonic)."""

    def acquire(self) -> None:
        super().acquire()
        self.acquired_at = time.monotonic()

    def release(self) -> None:
        self.released_at = time.monotonic()
        super().release()


def test_a_pool_that_outlasts_its_lease_ttl_keeps_the_lease_and_another_reconcile_waits(
    fresh_sandbox_state: t.Any, core: Core, mongodb: MongoServer
) -> None:
    sandbox = fresh_sandbox_state
    collection = f"locks_{uuid.uuid4().hex[:8]}"
    leases: list[RecordingLease] = []

    def locks(wait_timeout: float) -> t.Callable[[str], RecordingLease]:
        def factory(key: str) -> RecordingLease:
            lease = RecordingLease(mongodb.uri, "ghr_test", collection, key, ttl=2.0, wait_timeout=wait_timeout)
            leases.append(lease)
            return lease

        return factory

    # Each create takes a second: the pool's six take three times the lease's ttl.
    sandbox.add_fault(kind="latency", service="nova", method="POST", route="/servers", delay=1.0, count=None)
    pool = core.spec(pool_dict(sandbox, min_idle=6, max_runners=6, create_concurrency=1))
    options = ReconcileOptions(core.controller_id)
    first = Reconciler(core.github(), core.cloud(), locks(wait_timeout=10))
    outcome: dict[str, t.Any] = {}

    def reconcile_first() -> None:
        outcome["first"] = first.run([pool], options)

    thread = threading.Thread(target=reconcile_first)
    thread.start()
    core.wait_for("the first server create", lambda: len(core.servers(pool.name)) >= 1)
    second = Reconciler(core.github(), core.cloud(), locks(wait_timeout=3.0))
    try:
        outcome["second"] = second.run([pool], options)
    except LockError as exc:
        outcome["second"] = exc
    thread.join(60)
    sandbox.clear_faults()

    holder, waiter = leases
    assert outcome["first"].errors == []
    assert len(outcome["first"].pools[0].execution.created) == 6
    # The second reconcile never held the pool while the first did.
    assert not hasattr(waiter, "acquired_at") or waiter.acquired_at >= holder.released_at
    assert isinstance(outcome["second"], LockError) or outcome["second"].pools[0].plan.create == 0
    assert len(core.servers(pool.name)) <= pool.max_runners
    core.reconcile([pool_dict(sandbox, name=pool.name)], mode="absent")
