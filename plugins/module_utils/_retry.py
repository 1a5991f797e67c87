# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jittered exponential backoff, bounded by a number of attempts and a total time budget.

The caller decides what is retryable: `retryable(exc)` returns None for "do not retry"
or the minimum delay before the next attempt (0 for "use the backoff", or a server's
`Retry-After`/rate-limit reset, to which a random spread is added: clients told the
same wait must not come back at the same moment). Only the API clients use it, per
call site, so a retry never multiplies with another retry layer.
"""

from __future__ import annotations

import dataclasses
import random
import time
import typing as t

T = t.TypeVar("T")

#: Decides whether an exception is retryable: None = give up, else the minimum delay in seconds.
Retryable = t.Callable[[BaseException], t.Optional[float]]


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How hard a client retries one call."""

    attempts: int = 4  # total attempts, the first one included
    base: float = 0.5  # seconds; the backoff doubles per retry ...
    cap: float = 8.0  # ... up to this
    budget: t.Optional[float] = 120.0  # seconds from the first attempt; no sleep goes past it

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.base < 0 or self.cap < 0:
            raise ValueError("base and cap must not be negative")

    def call(
        self,
        fn: t.Callable[[], T],
        retryable: Retryable,
        *,
        sleep: t.Callable[[float], None] = time.sleep,
        rng: t.Callable[[], float] = random.random,
        clock: t.Callable[[], float] = time.monotonic,
    ) -> T:
        """`retry_call` with this policy."""
        return retry_call(
            fn,
            retryable=retryable,
            attempts=self.attempts,
            base=self.base,
            cap=self.cap,
            budget=self.budget,
            sleep=sleep,
            rng=rng,
            clock=clock,
        )


def backoff(retry: int, base: float, cap: float, rng: t.Callable[[], float] = random.random) -> float:
    """The delay before retry number `retry` (1-based): equal jitter over min(cap, base * 2**(retry-1)).

    Half of the exponential step is kept so that a retry never fires immediately, the other
    half is random so that many clients failing together do not retry together.
    """
    step = min(cap, base * 2.0 ** (retry - 1))
    return step / 2 + rng() * step / 2


def jittered(wait: float, base: float, cap: float, rng: t.Callable[[], float] = random.random) -> float:
    """A server-given `wait` plus a random spread: a quarter of it, at least `base`, at most `cap` seconds."""
    return wait + rng() * min(cap, max(base, wait / 4))


def retry_call(
    fn: t.Callable[[], T],
    *,
    retryable: Retryable,
    attempts: int = 4,
    base: float = 0.5,
    cap: float = 8.0,
    budget: t.Optional[float] = None,
    sleep: t.Callable[[float], None] = time.sleep,
    rng: t.Callable[[], float] = random.random,
    clock: t.Callable[[], float] = time.monotonic,
) -> T:
    """Call `fn` until it succeeds, `retryable` says no, `attempts` are used up or `budget` would be exceeded.

    The last exception propagates unchanged.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    start = clock()
    attempt = 1
    while True:
        try:
            return fn()
        except Exception as exc:
            minimum = retryable(exc)
            if minimum is None or attempt >= attempts:
                raise
            delay = backoff(attempt, base, cap, rng)
            if minimum > 0:
                delay = max(delay, jittered(minimum, base, cap, rng))
            if budget is not None and clock() - start + delay > budget:
                raise
            sleep(delay)
            attempt += 1
