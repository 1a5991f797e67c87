"""The write token bucket: burst, refill, queueing, on a clock the test moves."""

from __future__ import annotations

import threading

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._ratelimit import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_burst_goes_at_once_then_requests_are_paced() -> None:
    clock = Clock()
    bucket = TokenBucket(burst=3, per_minute=60, clock=clock)  # one a second
    assert [bucket.reserve() for _request in range(3)] == [0.0, 0.0, 0.0]
    # Each further request queues behind the one before it.
    assert [bucket.reserve() for _request in range(3)] == [1.0, 2.0, 3.0]


def test_tokens_come_back_with_time_up_to_the_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(burst=2, per_minute=30, clock=clock)  # one every 2 s
    assert bucket.reserve() == bucket.reserve() == 0.0
    clock.now += 2.0
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == 2.0
    clock.now += 3600  # a long quiet spell refills no more than the burst
    assert [bucket.reserve() for _request in range(3)] == [0.0, 0.0, 2.0]


def test_waiting_requests_are_counted_against_the_refill() -> None:
    clock = Clock()
    bucket = TokenBucket(burst=1, per_minute=60, clock=clock)
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == 1.0  # reserved: due at t+1
    clock.now += 1.0  # that request went; the bucket is empty again
    assert bucket.reserve() == 1.0


def test_defaults_follow_githubs_secondary_limit() -> None:
    clock = Clock()
    bucket = TokenBucket(clock=clock)
    assert (bucket.burst, bucket.per_minute) == (80, 80.0)
    waits = [bucket.reserve() for _request in range(100)]
    assert waits[:80] == [0.0] * 80
    assert waits[80] == pytest.approx(0.75)
    assert waits[99] == pytest.approx(15.0)  # 100 creations: the last JIT request 15 s later


def test_threads_share_one_bucket_and_each_token_is_handed_out_once() -> None:
    clock = Clock()
    bucket = TokenBucket(burst=10, per_minute=60, clock=clock)
    waits: list[float] = []
    lock = threading.Lock()

    def reserve_some() -> None:
        for _request in range(25):
            wait = bucket.reserve()
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=reserve_some) for _thread in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(waits) == [0.0] * 10 + [float(n) for n in range(1, 91)]


@pytest.mark.parametrize(("burst", "per_minute"), [(0, 80.0), (80, 0.0), (80, -1.0)])
def test_bad_bucket_settings_are_refused(burst: int, per_minute: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(burst, per_minute)
