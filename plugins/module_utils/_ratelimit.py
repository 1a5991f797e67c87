# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pacing of GitHub requests: a token bucket for mutating requests, and the rate-limit status.

GitHub documents a secondary rate limit for content-creating requests (80 a minute,
500 an hour); a scale-up of a hundred runners would otherwise send a hundred JIT
POSTs at once. The bucket lets `burst` requests go at once, then `per_minute` a
minute. It is pure arithmetic on an injectable clock: `reserve` hands out the delay,
and the caller sleeps outside the bucket's lock, so threads that share one bucket
are served in the order they asked.
"""

from __future__ import annotations

import dataclasses
import datetime
import threading
import time
import typing as t

DEFAULT_BURST = 80
DEFAULT_PER_MINUTE = 80.0


class TokenBucket:
    """`burst` tokens, refilled at `per_minute` a minute; one token per request."""

    def __init__(
        self,
        burst: int = DEFAULT_BURST,
        per_minute: float = DEFAULT_PER_MINUTE,
        clock: t.Callable[[], float] = time.monotonic,
    ) -> None:
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        if per_minute <= 0:
            raise ValueError(f"per_minute must be above 0, got {per_minute}")
        self.burst = burst
        self.per_minute = per_minute
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take a token: the seconds to wait before the request may go (0 when a token was there).

        The balance may go below zero: each reservation queues behind the earlier ones.
        """
        with self._lock:
            now = self._clock()
            refill = (now - self._updated) * self.per_minute / 60.0
            self._tokens = min(float(self.burst), self._tokens + refill) - 1.0
            self._updated = now
            if self._tokens >= 0:
                return 0.0
            return -self._tokens * 60.0 / self.per_minute


@dataclasses.dataclass(frozen=True)
class GithubRate:
    """What a GitHub client knows about its rate limits, for a run's result."""

    remaining: t.Optional[int] = None  # X-RateLimit-Remaining of the last response, None before one
    write_wait: float = 0.0  # seconds mutating requests waited on the token bucket
    not_before: t.Optional[datetime.datetime] = None  # GitHub asked for no change before then (aware, UTC)
