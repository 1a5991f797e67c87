"""Benchmark of the job queue's claims on the MongoDB-compatible server of the tests.

    python -m tests.sandbox.bench_queue [--jobs 400] [--claimers 1,8] [--processes]

Starts FerretDB (or uses $MONGODB_URI), fills a pool with queued jobs, lets N claimers
(threads, or processes with --processes) claim them all at once, and prints claims per
second, the claim latency percentiles and the number of jobs won twice (must be 0).
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import pathlib
import statistics
import tempfile
import threading
import time
import typing as t
import uuid

from tests.integration.reactive.claimers import fill, open_queue
from tests.sandbox.mongo import start_mongodb


def _claim_all(uri: str, database: str, owner: str, pool: str, barrier: t.Any, out: t.Any) -> None:
    queue = open_queue(uri, database, owner)
    won: list[str] = []
    latencies: list[float] = []
    barrier.wait(timeout=120)
    while True:
        started = time.perf_counter()
        result = queue.claim([pool], limit=1)
        latencies.append(time.perf_counter() - started)
        if not result.leases:
            break
        won.extend(lease.job.id for lease in result.leases)
    out.put((won, latencies[:-1]))
    queue.mongo.close()


def run(uri: str, jobs: int, claimers: int, processes: bool) -> dict[str, float]:
    database = f"bench_{uuid.uuid4().hex[:8]}"
    filler = open_queue(uri, database, "filler")
    filler.ensure_indexes()
    fill(filler, "bench", jobs)
    if processes:
        context = multiprocessing.get_context("spawn")
        barrier, out = context.Barrier(claimers + 1), context.Queue()
        workers: list[t.Any] = [
            context.Process(target=_claim_all, args=(uri, database, f"c{i}", "bench", barrier, out))
            for i in range(claimers)
        ]
    else:
        import queue as queue_module

        barrier, out = threading.Barrier(claimers + 1), queue_module.Queue()
        workers = [
            threading.Thread(target=_claim_all, args=(uri, database, f"c{i}", "bench", barrier, out))
            for i in range(claimers)
        ]
    for worker in workers:
        worker.start()
    barrier.wait(timeout=120)
    started = time.perf_counter()
    results = [out.get(timeout=600) for _worker in workers]
    elapsed = time.perf_counter() - started
    for worker in workers:
        worker.join(timeout=60)
    won = collections.Counter(job for ids, _latencies in results for job in ids)
    latencies = sorted(lat for _ids, lats in results for lat in lats)
    filler.mongo.client.drop_database(database)
    filler.mongo.close()
    return {
        "claimed": float(len(won)),
        "won_twice": float(sum(1 for count in won.values() if count > 1)),
        "claims_per_s": len(won) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--claimers", default="1,8")
    parser.add_argument("--processes", action="store_true")
    args = parser.parse_args()
    server = start_mongodb(pathlib.Path(tempfile.mkdtemp(prefix="bench-queue-")))
    try:
        for claimers in (int(n) for n in args.claimers.split(",")):
            numbers = run(server.uri, args.jobs, claimers, args.processes)
            kind = "processes" if args.processes else "threads"
            print(
                f"{claimers} claimer {kind}: {numbers['claimed']:.0f} jobs claimed, {numbers['won_twice']:.0f} won twice,"
                f" {numbers['claims_per_s']:.1f} claims/s, claim() p50 {numbers['p50_ms']:.1f} ms,"
                f" p99 {numbers['p99_ms']:.1f} ms"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
