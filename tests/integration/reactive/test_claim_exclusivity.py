"""Exclusivity of claims under real concurrency, on the test suite's MongoDB-compatible server.

FerretDB 1.24 gives several winners to a conditional find_one_and_update raced by 8
threads; the queue's claims rest on unique `_id` inserts instead. These tests race 8
claimers (threads, then processes) for the same jobs over many rounds and check the
invariants: no job is won twice, and every job is won once (nothing is starved).
"""

from __future__ import annotations

import collections
import multiprocessing
import random
import threading
import typing as t

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import (
    JobQueue,
    LeaseLostError,
)
from tests.integration.reactive.claimers import Win, claim_until_empty, fill, process_claimer
from tests.sandbox.mongo import MongoServer

CLAIMERS = 8
pytestmark = pytest.mark.mongodb


def run_threads(targets: list[t.Callable[[], None]]) -> None:
    errors: list[BaseException] = []

    def guarded(target: t.Callable[[], None]) -> None:
        try:
            target()
        except BaseException as exc:  # reported below; a thread's exception would vanish
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads)


def race_threads(queues: list[JobQueue], pool: str) -> list[Win]:
    """All queues claim from `pool` at once, each in its own thread, until it is empty."""
    barrier = threading.Barrier(len(queues))
    per_claimer: list[list[Win]] = [[] for _queue in queues]

    def claimer(index: int) -> None:
        barrier.wait(timeout=60)
        per_claimer[index] = claim_until_empty(queues[index], pool)

    run_threads([lambda i=i: claimer(i) for i in range(len(queues))])
    return [win for won in per_claimer for win in won]


def assert_each_job_won_once(wins: list[Win], jobs: list[str]) -> None:
    by_job = collections.defaultdict(list)
    for win in wins:
        by_job[win.job].append(win)
    twice = {job: ws for job, ws in by_job.items() if len(ws) > 1}
    assert not twice, f"jobs won by more than one claim: {twice}"
    assert sorted(by_job) == sorted(jobs), "some jobs were never claimed"


def test_threads_never_win_the_same_job_twice(make_queue: t.Callable[..., JobQueue]) -> None:
    queues = [make_queue(f"thread-{i}") for i in range(CLAIMERS)]
    for round_number in range(20):
        pool = f"t{round_number}"
        jobs = fill(queues[0], pool, 8)
        wins = race_threads(queues, pool)
        assert_each_job_won_once(wins, jobs)
        assert {win.attempt for win in wins} == {1}


def test_processes_never_win_the_same_job_twice(
    mongodb: MongoServer, database: str, make_queue: t.Callable[..., JobQueue]
) -> None:
    filler = make_queue("filler")
    rounds = [f"p{n}" for n in range(10)]
    jobs = {pool: fill(filler, pool, 8) for pool in rounds}
    context = multiprocessing.get_context("spawn")  # no pymongo client crosses a fork
    barrier = context.Barrier(CLAIMERS)
    results = context.Queue()
    processes = [
        context.Process(target=process_claimer, args=(mongodb.uri, database, f"process-{i}", rounds, barrier, results))
        for i in range(CLAIMERS)
    ]
    for process in processes:
        process.start()
    wins: dict[str, list[Win]] = collections.defaultdict(list)
    try:
        for _result in range(CLAIMERS * len(rounds)):
            pool, won = results.get(timeout=300)
            wins[pool].extend(Win(*w) for w in won)
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
    assert [p.exitcode for p in processes] == [0] * CLAIMERS
    for pool in rounds:
        assert_each_job_won_once(wins[pool], jobs[pool])
    owners = {win.owner for won in wins.values() for win in won}
    assert len(owners) > 1, "one process won everything: the claimers did not compete"


def test_released_jobs_are_reclaimed_but_spawned_once(make_queue: t.Callable[..., JobQueue]) -> None:
    """Claimers that give most jobs back: stale listings meet released and spawned jobs all the time."""
    queues = [make_queue(f"churn-{i}") for i in range(CLAIMERS)]
    jobs = fill(queues[0], "churn", 30)
    spawned: collections.Counter[str] = collections.Counter()
    wins: list[Win] = []
    lock = threading.Lock()
    barrier = threading.Barrier(CLAIMERS)

    def claimer(queue: JobQueue, seed: int) -> None:
        rng = random.Random(seed)
        barrier.wait(timeout=60)
        idle_rounds = 0
        while idle_rounds < 3:
            result = queue.claim(["churn"], limit=2)
            idle_rounds = 0 if result.leases else idle_rounds + 1
            for lease in result.leases:
                with lock:
                    wins.append(Win(lease.owner, lease.job.id, lease.attempt))
                if rng.random() < 0.6:
                    queue.release(lease, "try again", delay=0)
                else:
                    try:
                        queue.mark_spawned(lease, f"runner-{lease.job.job_id}")
                    except LeaseLostError:  # not expected with a 120 s lease; counted as a failure below
                        raise
                    with lock:
                        spawned[lease.job.id] += 1

    run_threads([lambda q=q, i=i: claimer(q, i) for i, q in enumerate(queues)])
    attempts = collections.Counter((win.job, win.attempt) for win in wins)
    assert [key for key, count in attempts.items() if count > 1] == []
    assert sorted(spawned) == sorted(jobs)
    assert set(spawned.values()) == {1}
    states = queues[0].depth(["churn"])
    assert [(d.status, d.count) for d in states] == [("spawned", len(jobs))]
