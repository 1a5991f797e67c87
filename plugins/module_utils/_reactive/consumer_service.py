# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The reactive consumer's entry point::

    python -m ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.consumer_service \\
        --config /etc/github-runners/reactive-consumer.yml [--check]

`--check` validates the configuration (secret files included) without connecting anywhere:
exit 0, or the error on stderr and exit 2.

Running, it serves the configured pools with a `consumer.Consumer`, and answers
``GET /healthz`` (200 while MongoDB answers, else 503) and ``GET /metrics`` (Prometheus) on
`metrics.host`:`metrics.port` (loopback by default; port 0: no endpoint). Every few seconds
it refreshes the queue depth, returns the jobs of crashed claimers to the queue and, when
asked to, drains the kombu `messages` of an older webhook router into job documents.

SIGTERM or SIGINT: no new claim; claimed jobs not yet started go back to the queue; spawns
under way finish; exit 0. Whatever is still running after `shutdown_timeout` is abandoned
(exit 1): its leases expire and other consumers retry its jobs. A SIGKILL loses nothing
either, for the same reason. The standard library's HTTP server is enough for two GET
routes read by a local Prometheus; it is never exposed to GitHub.
"""

from __future__ import annotations

import argparse
import http.server
import logging
import os
import signal
import sys
import threading
import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import ConfigError, RunnerError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._github import GithubAuth, GithubClient
from ansible_collections.selfhosted.github_runners.plugins.module_utils._lock import MongoLease, PoolLock
from ansible_collections.selfhosted.github_runners.plugins.module_utils._openstack import CloudClient
from ansible_collections.selfhosted.github_runners.plugins.module_utils._ratelimit import TokenBucket
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive import kombu_messages
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.consumer import (
    Consumer,
    ConsumerOptions,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.consumer_config import (
    ConsumerSettings,
    load_settings,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.consumer_metrics import (
    ConsumerMetrics,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.job import api_host_of
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.mongo import MongoAccess
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import JobQueue
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.service_logging import configure
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reconcile import LockFactory

LOGGER = logging.getLogger("selfhosted.github_runners.consumer")
HOUSEKEEPING_INTERVAL = 5.0
LOCK_POLL_INTERVAL = 0.05  # the consumer holds a pool's lock for milliseconds: ask again soon


class Service:
    """The consumer with its clients, housekeeping and metrics endpoint; `run` until stopped."""

    def __init__(self, settings: ConsumerSettings) -> None:
        self.settings = settings
        self.stop = threading.Event()
        self.github = GithubClient(
            GithubAuth(
                token=settings.github.token,
                app_id=settings.github.app_id,
                private_key=settings.github.app_private_key,
                installation_id=settings.github.app_installation_id,
            ),
            api_url=settings.github.api_url,
            timeout=settings.github.timeout,
            max_rate_limit_wait=settings.github.max_rate_limit_wait,
            write_bucket=TokenBucket(settings.github.write_burst, settings.github.writes_per_minute),
        )
        self.cloud = CloudClient.connect(settings.openstack)
        self.mongo = MongoAccess(settings.mongodb_uri, server_timeout=settings.mongodb_timeout)
        self.queue = JobQueue(
            self.mongo,
            database=settings.database,
            jobs_collection=settings.jobs_collection,
            doorbell=settings.doorbell,
            claims_collection=settings.claims_collection,
            lease_ttl=settings.lease_ttl,
            backoff_base=settings.retry_delay,
            backoff_cap=settings.retry_delay_max,
        )
        self.metrics = ConsumerMetrics(self.github, self.cloud)
        self.consumer = Consumer(
            settings.pools,
            self.queue,
            self.github,
            self.cloud,
            self._locks(),
            ConsumerOptions(
                controller_id=settings.controller_id,
                api_host=api_host_of(settings.github.api_url),
                concurrency=settings.concurrency,
                poll_interval=settings.poll_interval,
                max_attempts=settings.max_attempts,
                lock_timeout=settings.lock_timeout,
            ),
            events=self.metrics,
        )
        self.http: t.Optional[http.server.ThreadingHTTPServer] = None

    def _locks(self) -> LockFactory:
        s = self.settings
        client = self.mongo.client  # one connection pool for the queue and the pools' leases

        def lease(key: str) -> PoolLock:
            return MongoLease(
                client,
                s.database,
                s.locks_collection,
                key,
                ttl=s.lock_ttl,
                wait_timeout=s.lock_timeout,
                poll_interval=LOCK_POLL_INTERVAL,
            )

        return lease

    # Running -------------------------------------------------------------------------------------
    def run(self) -> int:
        self.queue.ensure_indexes()
        if self.settings.metrics_port:
            self.http = _metrics_server(self.settings.metrics_host, self.settings.metrics_port, self)
            threading.Thread(target=self.http.serve_forever, name="ghr-consumer-http", daemon=True).start()
        threading.Thread(target=self._housekeeping, name="ghr-consumer-housekeeping", daemon=True).start()
        LOGGER.info(
            "consumer started: pools %s, %d at once, metrics %s",
            ", ".join(pool.name for pool in self.settings.pools),
            self.settings.concurrency,
            f"on {self.settings.metrics_host}:{self.http.server_address[1]}" if self.http else "off",
        )
        try:
            self.consumer.run(self.stop)
        finally:
            if self.http is not None:
                self.http.shutdown()
            self.close()
        LOGGER.info("consumer stopped")
        return 0

    def request_stop(self, signum: int, _frame: object = None) -> None:
        if self.stop.is_set():
            return
        LOGGER.info("%s: no new claims; finishing the spawns under way", signal.Signals(signum).name)
        self.stop.set()
        self.consumer.wake()  # out of the poll's wait now
        threading.Thread(target=self._abandon_after_timeout, name="ghr-consumer-shutdown", daemon=True).start()

    def _abandon_after_timeout(self) -> None:
        threading.Event().wait(self.settings.shutdown_timeout)
        LOGGER.warning(
            "still busy %g s after the stop request: exiting; the leases of the jobs left expire and are retried",
            self.settings.shutdown_timeout,
        )
        logging.shutdown()
        os._exit(1)

    def _housekeeping(self) -> None:
        names = [pool.name for pool in self.settings.pools]
        while not self.stop.wait(HOUSEKEEPING_INTERVAL):
            try:
                self.queue.expire_leases(names)
                if self.settings.drain_kombu_messages:
                    report = kombu_messages.drain(
                        self.queue,
                        database=self.settings.database,
                        pools_by_queue={name: name for name in names},
                        messages_collection=self.settings.messages_collection,
                        api_host=api_host_of(self.settings.github.api_url),
                    )
                    if report.converted or report.rejected:
                        LOGGER.info(
                            "kombu messages: %d converted into jobs, %d rejected",
                            report.converted,
                            len(report.rejected),
                        )
                self.metrics.set_depth(self.queue.depth(names))
            except RunnerError as exc:
                LOGGER.warning("housekeeping failed: %s", exc)

    def healthy(self) -> bool:
        try:
            self.mongo.ping()
        except RunnerError:
            return False
        return True

    def close(self) -> None:
        for close in (self.github.close, self.cloud.close, self.mongo.close):
            try:
                close()
            except Exception:  # closing is best effort
                LOGGER.debug("closing failed", exc_info=True)


def _metrics_server(host: str, port: int, service: Service) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._answer(200, service.metrics.exposition(), "text/plain; version=0.0.4")
            elif self.path == "/healthz":
                ok = service.healthy()
                self._answer(200 if ok else 503, b"ok\n" if ok else b"MongoDB does not answer\n", "text/plain")
            else:
                self._answer(404, b"not found\n", "text/plain")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: t.Any) -> None:
            LOGGER.debug("metrics endpoint: " + format, *args)

    server = http.server.ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def main(argv: t.Optional[t.Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="reactive-consumer", description="Spawn one runner per queued job.")
    parser.add_argument("--config", required=True, help="the YAML configuration file")
    parser.add_argument("--check", action="store_true", help="validate the configuration and exit")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        sys.stderr.write(f"reactive-consumer: {args.config}: {exc}\n")
        return 2
    if args.check:
        sys.stdout.write(f"configuration OK: {len(settings.pools)} pools\n")
        return 0
    configure(settings.log_format, settings.log_level, [*settings.secrets, settings.mongodb_uri])
    for path in settings.exposed_files:
        LOGGER.warning("secret file %s can be read by others than its owner: make it 0600", path)
    try:
        service = Service(settings)
    except RunnerError as exc:
        LOGGER.error("cannot start: %s", exc)
        return 1
    signal.signal(signal.SIGTERM, service.request_stop)
    signal.signal(signal.SIGINT, service.request_stop)
    try:
        return service.run()
    except RunnerError as exc:  # MongoDB unreachable at start: systemd restarts the service
        LOGGER.error("stopped: %s", exc)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
