"""One simulated compute host: builds and deletes queue behind each other, N at a time.

Pending work sits in a deque and running work in a heap keyed by its finish time, so a
tick costs O(finished · log running) however many servers exist.
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import itertools
import typing as t


@dataclasses.dataclass(eq=False)
class Operation:
    kind: str  # "build" | "delete"
    server_id: str
    duration: t.Callable[[], float]  # read from the config when the operation starts
    finish: t.Callable[[float], None]  # called under world.lock with the finish time
    cancelled: bool = False


class ComputeHost:
    def __init__(self, concurrency: t.Callable[[], int]) -> None:
        self._concurrency = concurrency
        self._waiting: collections.deque[Operation] = collections.deque()
        self._running: list[tuple[float, int, Operation]] = []
        self._seq = itertools.count()

    def submit(self, op: Operation, now: float) -> None:
        self._waiting.append(op)
        self._start(now)

    def _start(self, now: float) -> None:
        # A cancelled operation (a build whose server was deleted) frees its slot at once, as on Nova.
        if any(op.cancelled for _due, _seq, op in self._running):
            self._running = [entry for entry in self._running if not entry[2].cancelled]
            heapq.heapify(self._running)
        while self._waiting and len(self._running) < max(1, self._concurrency()):
            op = self._waiting.popleft()
            if op.cancelled:
                continue
            heapq.heappush(self._running, (now + max(0.0, op.duration()), next(self._seq), op))

    def tick(self, now: float) -> None:
        while self._running and self._running[0][0] <= now:
            due, _seq, op = heapq.heappop(self._running)
            if not op.cancelled:
                op.finish(due)
            # The next operation starts when this one ended, not at the (later) tick.
            self._start(due)
        self._start(now)

    def stats(self) -> dict[str, int]:
        return {"running": len(self._running), "waiting": sum(1 for op in self._waiting if not op.cancelled)}
