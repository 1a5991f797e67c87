"""The whole reactive path in the sandbox: GitHub's webhooks, the router, the queue, the consumer, the reconcile."""

from __future__ import annotations

import collections
import signal
import typing as t

import pytest

from tests.integration.consumer import service
from tests.integration.consumer.conftest import CONTROLLER, ReactiveWorld
from tests.integration.router.service import RouterProcess, running, write_config

pytestmark = pytest.mark.sandbox


@pytest.mark.timeout(900)
def test_jobs_queued_in_github_are_served_by_reactive_runners_and_nothing_remains(
    world: ReactiveWorld, tmp_path: t.Any
) -> None:
    pool = world.pool(min_idle=0, max_runners=10)
    router_pools = [{"name": pool["name"], "labels": pool["labels"]}]
    router_config = write_config(tmp_path / "router", world.mongodb_uri, world.database, pools=router_pools)
    (tmp_path / "router" / "webhook-secret").write_text(world.sandbox.env["GITHUB_WEBHOOK_SECRET"] + "\n")
    consumer_config = service.write_config(
        tmp_path / "consumer", world.sandbox, world.mongodb_uri, world.database, [pool], CONTROLLER
    )
    with running(router_config) as router:
        hook = world.sandbox.control.post(
            "/webhooks", {"url": f"http://127.0.0.1:{router.port}/webhook", "events": ["workflow_job"]}
        )["id"]
        consumer = service.start(consumer_config, world.sandbox)
        try:
            world.start_reconcile([pool], interval=2.0)
            # Queued in GitHub only: the router writes the documents from the webhooks.
            answer = world.sandbox.control.post(
                "/jobs", {"repository": world.repository, "labels": pool["labels"], "count": 20, "duration": 0.3}
            )
            ids = [int(job["id"]) for job in answer["jobs"]]
            world.wait_completed(ids, timeout=300)
            # The router follows each job to its end; GitHub's last webhooks may still be on their way,
            # so the webhook and the router stay until every document says so.
            queue = world.queue("check")

            def statuses() -> collections.Counter[str]:
                prefix = f"{world.api_host}/{world.repository.lower()}"
                return collections.Counter(queue.get(f"{prefix}/{i}").status.value for i in ids)

            try:
                world.core.wait_for("every document completed", lambda: set(statuses()) == {"completed"}, timeout=120)
            except AssertionError as exc:
                raise AssertionError(f"{exc}: {dict(statuses())}\n{stragglers(world, router, hook, ids)}") from None
        finally:
            world.sandbox.control.delete(f"/webhooks/{hook}")
            consumer.signal(signal.SIGTERM)
            assert consumer.wait(timeout=60) == 0, consumer.lines[-20:]
    ran_on = {e["runner_name"] for e in world.sandbox.events("job_in_progress") if e["job_id"] in ids}
    assert len(ran_on) == 20 and all(name.startswith(f"{CONTROLLER}-{pool['name']}-") for name in ran_on)
    world.core.wait_for("no VM left", lambda: not world.core.servers(pool["name"]), timeout=120)
    world.core.wait_for("no runner left", lambda: not world.core.runners(pool["name"]), timeout=120)


def stragglers(world: ReactiveWorld, router: RouterProcess, hook: int, ids: t.Sequence[int]) -> str:
    """What the queue, GitHub's deliveries and the router's log say of the jobs not completed."""
    queue = world.queue("check")
    prefix = f"{world.api_host}/{world.repository.lower()}"
    deliveries = world.sandbox.control.get("/deliveries")["deliveries"]
    keep = ("status", "runner_name", "spawned_runner", "attempts", "delivery_ids", "updated_at")
    lines = []
    for job_id in ids:
        doc = queue.mongo.call("debug", lambda job_id=job_id: queue._jobs.find_one({"_id": f"{prefix}/{job_id}"}))
        if doc is None or doc.get("status") != "completed":
            shown = {k: (doc or {}).get(k) for k in keep}
            lines.append(f"job {job_id}: {shown}")
            lines += [
                f"  delivery {d['action']}: {d['status']} {d['status_code']} {d['error']} in {d['duration']}"
                for d in deliveries
                if d["hook_id"] == hook and d["job_id"] == job_id
            ]
            lines += [f"  router: {line}" for line in router.log if str(job_id) in line][-10:]
    return "\n".join(lines)
