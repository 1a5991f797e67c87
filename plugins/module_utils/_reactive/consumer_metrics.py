# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The reactive consumer's Prometheus metrics, in a registry of their own.

Counters follow the consumer's events; the queue depth, the API call counts and GitHub's
remaining rate limit are read when `/metrics` is scraped or refreshed by the service.
"""

from __future__ import annotations

import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._ports import CloudPort, GithubPort
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.consumer import ConsumerEvents
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import QueueDepth

METRICS_IMPORT_ERROR: t.Optional[str]
try:
    import prometheus_client

    METRICS_IMPORT_ERROR = None
except ImportError as exc:
    METRICS_IMPORT_ERROR = str(exc)

# Seconds: a spawn is two API calls on a quiet cloud, up to the calls' timeouts on a failing one.
SPAWN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ConsumerMetrics(ConsumerEvents):
    def __init__(self, github: GithubPort, cloud: CloudPort, registry: t.Optional[t.Any] = None) -> None:
        if METRICS_IMPORT_ERROR is not None:
            raise ImportError(f"prometheus-client is required: {METRICS_IMPORT_ERROR}")
        self.registry = registry if registry is not None else prometheus_client.CollectorRegistry()
        r = self.registry
        self.claimed_jobs = prometheus_client.Counter(
            "ghr_consumer_jobs_claimed", "Jobs claimed.", ["pool"], registry=r
        )
        self.spawned_jobs = prometheus_client.Counter(
            "ghr_consumer_jobs_spawned", "Jobs a runner was spawned for.", ["pool"], registry=r
        )
        self.dead_jobs = prometheus_client.Counter(
            "ghr_consumer_jobs_dead", "Jobs given up on (see their last_error).", ["pool"], registry=r
        )
        self.released_jobs = prometheus_client.Counter(
            "ghr_consumer_jobs_released",
            "Jobs given back to the queue with a backoff, by reason.",
            ["pool", "reason"],
            registry=r,
        )
        self.reported_jobs = prometheus_client.Counter(
            "ghr_consumer_jobs_reported",
            "Jobs GitHub already ran elsewhere when they were claimed, by the status it reported.",
            ["pool", "status"],
            registry=r,
        )
        self.spawn_seconds = prometheus_client.Histogram(
            "ghr_consumer_claim_to_spawn_seconds",
            "From the claim of a job to its runner's server create.",
            ["pool"],
            buckets=SPAWN_BUCKETS,
            registry=r,
        )
        self.wait_seconds = prometheus_client.Histogram(
            "ghr_consumer_received_to_spawn_seconds",
            "From the job document's arrival in the queue to its runner's server create.",
            ["pool"],
            buckets=SPAWN_BUCKETS,
            registry=r,
        )
        self.depth = prometheus_client.Gauge(
            "ghr_consumer_queue_depth", "Jobs in the queue by pool and status.", ["pool", "status"], registry=r
        )
        self.oldest = prometheus_client.Gauge(
            "ghr_consumer_queue_oldest_age_seconds",
            "Age of the oldest job in the queue by pool and status.",
            ["pool", "status"],
            registry=r,
        )
        calls = prometheus_client.Gauge(
            "ghr_consumer_api_calls", "API requests made since the start, per service.", ["service"], registry=r
        )
        calls.labels("github").set_function(lambda: github.total_calls)
        calls.labels("openstack").set_function(lambda: cloud.total_calls)
        self.api_errors = prometheus_client.Counter(
            "ghr_consumer_api_errors",
            "Failed API calls that cost a job an attempt, per service.",
            ["service"],
            registry=r,
        )
        remaining = prometheus_client.Gauge(
            "ghr_consumer_github_rate_limit_remaining", "Requests GitHub still allows (-1: not known yet).", registry=r
        )
        remaining.set_function(lambda: _remaining(github))

    # ConsumerEvents ----------------------------------------------------------------------------
    def claimed(self, pool: str, count: int) -> None:
        self.claimed_jobs.labels(pool).inc(count)

    def spawned(self, pool: str, since_claim: float, since_received: float) -> None:
        self.spawned_jobs.labels(pool).inc()
        self.spawn_seconds.labels(pool).observe(since_claim)
        self.wait_seconds.labels(pool).observe(since_received)

    def released(self, pool: str, reason: str) -> None:
        self.released_jobs.labels(pool, reason).inc()

    def dead(self, pool: str) -> None:
        self.dead_jobs.labels(pool).inc()

    def reported(self, pool: str, status: str) -> None:
        self.reported_jobs.labels(pool, status).inc()

    def api_error(self, service: str) -> None:
        self.api_errors.labels(service).inc()

    # Views -----------------------------------------------------------------------------------------
    def set_depth(self, depths: t.Sequence[QueueDepth]) -> None:
        self.depth.clear()
        self.oldest.clear()
        for depth in depths:
            self.depth.labels(depth.pool, depth.status).set(depth.count)
            if depth.oldest_age is not None:
                self.oldest.labels(depth.pool, depth.status).set(depth.oldest_age)

    def exposition(self) -> bytes:
        return bytes(prometheus_client.generate_latest(self.registry))


def _remaining(github: GithubPort) -> float:
    remaining = github.rate_status().remaining
    return -1.0 if remaining is None else float(remaining)
