"""Shared state of the sandbox: one lock, a clock, call counters, the event log and faults.

The OpenStack and GitHub simulators and the simulated runner VMs all live in one
`World`; a background ticker advances time-driven transitions (boots, runner
start-up, jobs) so that clients observe them without having to poll a special API.
"""

from __future__ import annotations

import collections
import dataclasses
import random
import threading
import time
import typing as t


class Counters:
    """API calls per service, method and route template."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: collections.Counter[tuple[str, str, str]] = collections.Counter()

    def count(self, service: str, method: str, route: str) -> None:
        with self._lock:
            self._counts[(service, method, route)] += 1

    def snapshot(self) -> list[dict[str, t.Any]]:
        with self._lock:
            return [
                {"service": s, "method": m, "route": r, "count": c} for (s, m, r), c in sorted(self._counts.items())
            ]

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


class EventLog:
    """Append-only log of what happened, for invariant checks (e.g. no busy runner deleted)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[dict[str, t.Any]] = []

    def add(self, type_: str, **fields: t.Any) -> None:
        with self._lock:
            self._events.append({"seq": len(self._events) + 1, "time": time.time(), "type": type_, **fields})

    def query(self, since: int = 0, type_: str | None = None) -> list[dict[str, t.Any]]:
        with self._lock:
            return [e for e in self._events[since:] if type_ is None or e["type"] == type_]


@dataclasses.dataclass
class Fault:
    """One injected fault.

    HTTP faults (`kind` in latency, status, reset, hang) match `service`, `method`
    and `route` (a route template, "*" for any). Domain faults are named by `kind`
    and matched by the simulator that owns them, with `match` holding their filter
    (e.g. {"name": "..."}). `count` is how many times it fires (None = always);
    `probability` with the world's seeded RNG makes a schedule.
    """

    kind: str
    service: str = "*"
    method: str = "*"
    route: str = "*"
    status: int = 500
    message: str | None = None
    body: t.Any = None
    raw_body: str | None = None  # sent as it is (malformed JSON, HTML, ...) instead of `body`
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    delay: float = 0.0
    hang_seconds: float = 30.0
    count: int | None = 1
    probability: float = 1.0
    match: dict[str, t.Any] = dataclasses.field(default_factory=dict)
    id: int = 0
    fired: int = 0


HTTP_FAULTS = frozenset({"latency", "status", "reset", "hang"})


class Faults:
    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._next_id = 1
        self.rng = random.Random(seed)

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            fault.id = self._next_id
            self._next_id += 1
            self._faults.append(fault)
            return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[dict[str, t.Any]]:
        with self._lock:
            return [dataclasses.asdict(f) for f in self._faults]

    def _take(self, pred: t.Callable[[Fault], bool]) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.count is not None and fault.count <= 0:
                    continue
                if not pred(fault):
                    continue
                if fault.probability < 1.0 and self.rng.random() >= fault.probability:
                    continue
                if fault.count is not None:
                    fault.count -= 1
                fault.fired += 1
                return fault
            return None

    def take_http(self, service: str, method: str, route: str) -> Fault | None:
        def pred(f: Fault) -> bool:
            return (
                f.kind in HTTP_FAULTS
                and f.service in ("*", service)
                and f.method in ("*", method)
                and f.route in ("*", route)
            )

        return self._take(pred)

    def take(self, kind: str, **attrs: t.Any) -> Fault | None:
        """A domain fault of `kind` whose `match` entries all equal `attrs`."""

        def pred(f: Fault) -> bool:
            return f.kind == kind and all(attrs.get(k) == v for k, v in f.match.items())

        return self._take(pred)


class World:
    def __init__(self, seed: int = 0, tick_interval: float = 0.05) -> None:
        self.lock = threading.RLock()
        self.counters = Counters()
        self.events = EventLog()
        self.faults = Faults(seed)
        self.tick_interval = tick_interval
        self._tickers: list[t.Callable[[float], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Filled by the simulators at start-up; the runner VMs use them to talk to each other.
        self.services: dict[str, t.Any] = {}
        # Tunables (delays, quotas, ...): each simulator `setdefault`s its keys; the control
        # API's POST /config changes them at run time.
        self.config: dict[str, t.Any] = {}

    @staticmethod
    def now() -> float:
        return time.time()

    def add_ticker(self, fn: t.Callable[[float], None]) -> None:
        self._tickers.append(fn)

    def tick(self) -> None:
        now = self.now()
        with self.lock:
            for fn in self._tickers:
                fn(now)

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.tick_interval):
                try:
                    self.tick()
                except Exception as exc:  # keep ticking; record the bug
                    self.events.add("sandbox_error", where="tick", error=f"{type(exc).__name__}: {exc}")

        self._thread = threading.Thread(target=loop, name="world-ticker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
