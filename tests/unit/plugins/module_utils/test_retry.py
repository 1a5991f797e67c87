"""Jittered exponential backoff: attempts, minimum delays, the total budget; a fake clock and sleep."""

from __future__ import annotations

import typing as t

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._retry import (
    RetryPolicy,
    backoff,
    jittered,
    retry_call,
)


class Transient(Exception):
    pass


class Fatal(Exception):
    pass


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def failing(times: int, exc: Exception, result: str = "ok") -> t.Callable[[], str]:
    calls = {"n": 0}

    def fn() -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise exc
        return result

    fn.calls = calls  # type: ignore[attr-defined]
    return fn


def only_transient(exc: BaseException) -> float | None:
    return 0.0 if isinstance(exc, Transient) else None


def run(fn: t.Callable[[], str], fake: FakeTime, rng: float = 0.5, **kwargs: t.Any) -> str:
    return retry_call(fn, retryable=only_transient, sleep=fake.sleep, clock=fake.clock, rng=lambda: rng, **kwargs)


def test_success_first_time_never_sleeps() -> None:
    fake = FakeTime()
    assert run(lambda: "ok", fake) == "ok"
    assert fake.sleeps == []


def test_retries_transient_errors_then_succeeds() -> None:
    fake = FakeTime()
    fn = failing(2, Transient())
    assert run(fn, fake, attempts=4) == "ok"
    assert fn.calls["n"] == 3  # type: ignore[attr-defined]
    assert len(fake.sleeps) == 2


def test_gives_up_after_attempts_with_the_last_error() -> None:
    fake = FakeTime()
    fn = failing(10, Transient("still down"))
    with pytest.raises(Transient, match="still down"):
        run(fn, fake, attempts=3)
    assert fn.calls["n"] == 3  # type: ignore[attr-defined]
    assert len(fake.sleeps) == 2


def test_does_not_retry_what_is_not_retryable() -> None:
    fake = FakeTime()
    fn = failing(1, Fatal())
    with pytest.raises(Fatal):
        run(fn, fake)
    assert fn.calls["n"] == 1  # type: ignore[attr-defined]
    assert fake.sleeps == []


def test_backoff_doubles_up_to_the_cap_with_equal_jitter() -> None:
    # rng = 0 keeps half of each step; rng -> 1 approaches the full step.
    assert [backoff(n, 1.0, 5.0, rng=lambda: 0.0) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 2.5, 2.5]
    assert [backoff(n, 1.0, 5.0, rng=lambda: 1.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]


def test_delays_follow_the_backoff() -> None:
    fake = FakeTime()
    run(failing(3, Transient()), fake, rng=0.0, attempts=4, base=1.0, cap=10.0)
    assert fake.sleeps == [0.5, 1.0, 2.0]


def test_minimum_delay_from_the_error_wins_over_a_shorter_backoff() -> None:
    fake = FakeTime()

    def retry_after(exc: BaseException) -> float | None:
        return 7.0

    retry_call(
        failing(1, Transient()),
        retryable=retry_after,
        sleep=fake.sleep,
        clock=fake.clock,
        rng=lambda: 0.0,
        base=0.1,
        cap=1.0,
    )
    assert fake.sleeps == [7.0]


def test_a_server_given_wait_gets_jitter_on_top() -> None:
    """Clients told the same Retry-After must not all come back at the same moment."""
    sleeps = []
    for rng in (0.0, 0.5, 1.0):
        fake = FakeTime()
        retry_call(
            failing(1, Transient()),
            retryable=lambda exc: 60.0,
            sleep=fake.sleep,
            clock=fake.clock,
            rng=lambda value=rng: value,  # type: ignore[misc]
            base=0.5,
            cap=8.0,
        )
        sleeps.extend(fake.sleeps)
    assert sleeps == [60.0, 64.0, 68.0]  # the spread: a quarter of the wait, at most the cap
    assert jittered(1.0, 0.5, 8.0, rng=lambda: 1.0) == 1.5  # at least the base


def test_budget_stops_before_a_sleep_would_pass_it() -> None:
    fake = FakeTime()
    fn = failing(10, Transient("down"))
    with pytest.raises(Transient):
        run(fn, fake, rng=0.0, attempts=10, base=1.0, cap=100.0, budget=4.0)
    # sleeps 0.5 + 1 + 2 = 3.5; the next one (4) would end at 7.5 > 4
    assert fake.sleeps == [0.5, 1.0, 2.0]
    assert fake.now <= 4.0


def test_budget_counts_time_spent_in_calls() -> None:
    fake = FakeTime()

    def slow() -> str:
        fake.now += 3.0  # each attempt takes 3 s
        raise Transient()

    with pytest.raises(Transient):
        run(slow, fake, rng=0.0, attempts=10, base=1.0, cap=1.0, budget=5.0)
    # attempt (3 s) + sleep 0.5 = 3.5, attempt -> 6.5: the next sleep would pass 5
    assert fake.sleeps == [0.5]


def test_a_wait_longer_than_the_budget_is_not_slept() -> None:
    fake = FakeTime()
    with pytest.raises(Transient):
        retry_call(
            failing(1, Transient()),
            retryable=lambda exc: 3600.0,
            sleep=fake.sleep,
            clock=fake.clock,
            budget=60.0,
        )
    assert fake.sleeps == []


def test_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError):
        retry_call(lambda: "ok", retryable=only_transient, attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


def test_policy_call_uses_the_policy() -> None:
    fake = FakeTime()
    policy = RetryPolicy(attempts=2, base=0.0, cap=0.0, budget=None)
    fn = failing(5, Transient())
    with pytest.raises(Transient):
        policy.call(fn, only_transient, sleep=fake.sleep, clock=fake.clock)
    assert fn.calls["n"] == 2  # type: ignore[attr-defined]
