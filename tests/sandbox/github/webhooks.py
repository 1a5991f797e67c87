"""Webhook subscriptions and deliveries, as GitHub makes them.

Each event is POSTed once to every subscriber from a background thread, signed with
the subscriber's secret (`X-Hub-Signature-256: sha256=<HMAC>`), with a unique
`X-GitHub-Delivery` GUID. A failed delivery is recorded and not retried (GitHub does
not retry either); a redelivery on request re-sends the same payload and GUID.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import queue
import random
import threading
import time
import typing as t
import urllib.error
import urllib.request
import uuid

if t.TYPE_CHECKING:
    from tests.sandbox.world import World


@dataclasses.dataclass
class Subscription:
    id: int
    url: str
    secret: str
    events: list[str]


@dataclasses.dataclass
class Delivery:
    id: int
    guid: str
    hook_id: int
    url: str
    event: str
    action: str
    job_id: int | None
    body: bytes = dataclasses.field(repr=False)
    redelivery: bool = False
    status: str = "pending"  # pending, delivered, failed, dropped
    status_code: int | None = None
    error: str | None = None
    delivered_at: float | None = None
    duration: float | None = None

    def public(self) -> dict[str, t.Any]:
        out = dataclasses.asdict(self)
        del out["body"]
        return out


class Webhooks:
    def __init__(
        self,
        world: World,
        seed: int,
        target: tuple[str, int],
        inspect: t.Callable[[str, str, dict[str, t.Any]], None] | None = None,
    ) -> None:
        self.world = world
        # Sees every payload (schema validation), on the delivery thread: off the world lock.
        self._inspect = inspect
        self._rng = random.Random(seed)
        self._target_type, self._target_id = target  # the installation target GitHub names in headers
        self.subscriptions: dict[int, Subscription] = {}
        self.deliveries: dict[int, Delivery] = {}
        self._queue: queue.Queue[Delivery | tuple[str, str, bytes] | None] = queue.Queue()
        self._pending = 0  # queued items not yet handled, under world.lock
        self._thread: threading.Thread | None = None
        # Deliveries go straight to the subscriber, never through an environment proxy.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def subscribe(self, url: str, secret: str, events: list[str]) -> Subscription:
        sub = Subscription(len(self.subscriptions) + 1, url, secret, events)
        self.subscriptions[sub.id] = sub
        return sub

    def emit(self, event: str, action: str, payload: dict[str, t.Any], job_id: int | None) -> None:
        """Queue one delivery per subscriber (caller holds world.lock)."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        if self._inspect is not None and self.world.config.get("github.validate"):
            self._put((event, action, body))
        for sub in self.subscriptions.values():
            if event not in sub.events and "*" not in sub.events:
                continue
            guid = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            delivery = Delivery(len(self.deliveries) + 1, guid, sub.id, sub.url, event, action, job_id, body)
            self.deliveries[delivery.id] = delivery
            if self.world.faults.take("webhook_dropped", event=event, action=action, url=sub.url) is not None:
                delivery.status = "dropped"
                self.world.events.add(
                    "webhook_dropped", delivery_id=delivery.id, guid=guid, url=sub.url, action=action, job_id=job_id
                )
                continue
            self._send(delivery)
            if self.world.faults.take("webhook_duplicated", event=event, action=action, url=sub.url) is not None:
                # GitHub sends some deliveries twice (same GUID): the receiver must be idempotent.
                twice = dataclasses.replace(delivery, id=len(self.deliveries) + 1)
                self.deliveries[twice.id] = twice
                self.world.events.add(
                    "webhook_duplicated", delivery_id=twice.id, guid=guid, url=sub.url, action=action, job_id=job_id
                )
                self._send(twice)

    def redeliver(self, delivery_id: int) -> Delivery | None:
        original = self.deliveries.get(delivery_id)
        if original is None:
            return None
        again = dataclasses.replace(
            original,
            id=len(self.deliveries) + 1,
            redelivery=True,
            status="pending",
            status_code=None,
            error=None,
            delivered_at=None,
            duration=None,
        )
        self.deliveries[again.id] = again
        self._send(again)
        return again

    def _send(self, delivery: Delivery) -> None:
        self._put(delivery)

    def _put(self, item: Delivery | tuple[str, str, bytes]) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="github-webhooks", daemon=True)
            self._thread.start()
        self._pending += 1
        self._queue.put(item)

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                if isinstance(item, Delivery):
                    self._deliver(item)
                elif self._inspect is not None:
                    event, action, body = item
                    self._inspect(event, action, json.loads(body))
            except Exception as exc:  # keep delivering; record the bug
                self.world.events.add("sandbox_error", where="webhooks", error=f"{type(exc).__name__}: {exc}")
            finally:
                with self.world.lock:
                    self._pending -= 1

    def _deliver(self, delivery: Delivery) -> None:
        with self.world.lock:
            sub = self.subscriptions.get(delivery.hook_id)
            timeout = float(self.world.config["github.webhook_timeout"])
        secret = sub.secret if sub is not None else ""
        signature = hmac.new(secret.encode(), delivery.body, hashlib.sha256).hexdigest()
        signature1 = hmac.new(secret.encode(), delivery.body, hashlib.sha1).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/sandbox",
            "X-GitHub-Event": delivery.event,
            "X-GitHub-Delivery": delivery.guid,
            "X-GitHub-Hook-ID": str(delivery.hook_id),
            "X-GitHub-Hook-Installation-Target-Type": self._target_type,
            "X-GitHub-Hook-Installation-Target-ID": str(self._target_id),
            "X-Hub-Signature": f"sha1={signature1}",
            "X-Hub-Signature-256": f"sha256={signature}",
        }
        request = urllib.request.Request(delivery.url, data=delivery.body, headers=headers, method="POST")
        started = time.monotonic()
        code: int | None = None
        error: str | None = None
        try:
            with self._opener.open(request, timeout=timeout) as resp:
                code = resp.status
                resp.read()
        except urllib.error.HTTPError as exc:
            code, error = exc.code, f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        with self.world.lock:
            delivery.duration = time.monotonic() - started
            delivery.delivered_at = time.time()
            delivery.status_code = code
            ok = code is not None and 200 <= code < 300
            delivery.status = "delivered" if ok else "failed"
            delivery.error = None if ok else error
            self.world.events.add(
                "webhook_delivered" if ok else "webhook_failed",
                delivery_id=delivery.id,
                guid=delivery.guid,
                url=delivery.url,
                action=delivery.action,
                job_id=delivery.job_id,
                status_code=code,
                redelivery=delivery.redelivery,
                **({} if ok else {"error": error}),
            )

    @property
    def pending(self) -> int:
        """Deliveries and payload checks queued and not yet done (read under world.lock)."""
        return self._pending

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """True once every queued delivery has been attempted and payload checked (for tests and the demo)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.world.lock:
                if self._pending == 0:
                    return True
            time.sleep(0.02)
        return False
