# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The webhook router service: aiohttp in front of `router.WebhookRouter`.

    python -m ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.router_service \\
        --config /etc/github-runners/webhook-router.yml [--check]

Routes: ``POST /webhook`` (GitHub's deliveries), ``GET /healthz`` (200 while MongoDB answers,
else 503) and ``GET /metrics`` (Prometheus). The body limit is enforced while the body is
read (aiohttp's `client_max_size`), before the core sees a byte. The core's blocking work
(HMAC, JSON, the MongoDB upsert) runs in a thread pool, under a deadline that keeps every
answer inside GitHub's 10 seconds. SIGTERM and SIGINT stop accepting connections, let the
requests in flight finish (up to `shutdown_timeout`) and exit 0. `--check` validates the
configuration and the secret files and exits.

Why aiohttp: a maintained asyncio HTTP server whose request parser is llhttp (the parser of
Node.js), which streams bodies and enforces a size limit while reading, and which shuts
down gracefully; it needs no separate application server. The standard library's
http.server is not meant for production.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import logging
import signal
import sys
import time
import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import ConfigError, QueueError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.mongo import MongoAccess
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import JobQueue
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.router import (
    JobSink,
    Reply,
    Result,
    WebhookRouter,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.router_config import (
    RouterSettings,
    load_settings,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.service_logging import configure

SERVICE_IMPORT_ERROR: t.Optional[str]
try:
    import prometheus_client
    from aiohttp import web
    from aiohttp.http_exceptions import HttpProcessingError

    SERVICE_IMPORT_ERROR = None
except ImportError as exc:
    SERVICE_IMPORT_ERROR = str(exc)

LOGGER = logging.getLogger("selfhosted.github_runners.webhook_router")
WORKERS = 16
# Seconds: MongoDB round trips on loopback take a millisecond; a stalled server takes the timeout.
ENQUEUE_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RouterMetrics:
    """The router's Prometheus metrics, in a registry of their own."""

    def __init__(self, registry: t.Optional[t.Any] = None) -> None:
        self.registry = registry if registry is not None else prometheus_client.CollectorRegistry()
        self.deliveries = prometheus_client.Counter(
            "ghr_router_deliveries",
            "Webhook deliveries by event, action and result (event and action empty when unverified).",
            ["event", "action", "result"],
            registry=self.registry,
        )
        self.signature_failures = prometheus_client.Counter(
            "ghr_router_signature_failures",
            "Deliveries refused for a missing, malformed or wrong X-Hub-Signature-256.",
            ["reason"],
            registry=self.registry,
        )
        self.enqueue_seconds = prometheus_client.Histogram(
            "ghr_router_enqueue_seconds",
            "Time to upsert a routed job into MongoDB.",
            buckets=ENQUEUE_BUCKETS,
            registry=self.registry,
        )
        self.delivery_seconds = prometheus_client.Histogram(
            "ghr_router_delivery_seconds",
            "Time from the request to the answer of a delivery, body read included.",
            buckets=ENQUEUE_BUCKETS,
            registry=self.registry,
        )

    def record(self, reply: Reply, seconds: float) -> None:
        self.deliveries.labels(reply.event, reply.action, reply.result.value).inc()
        if reply.signature_failure is not None:
            self.signature_failures.labels(reply.signature_failure.value).inc()
        if reply.enqueue_seconds is not None:
            self.enqueue_seconds.observe(reply.enqueue_seconds)
        self.delivery_seconds.observe(seconds)

    def exposition(self) -> bytes:
        return bytes(prometheus_client.generate_latest(self.registry))


class _BadRequests(logging.Filter):
    """aiohttp logs each request its parser refuses as an error with a traceback: one warning line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg, record.args, record.exc_info, record.exc_text = "bad HTTP request", None, None, None
            record.fields = {"status": error.code, "detail": str(error.message).split("\n", 1)[0][:200]}
        return True


def configure_logging(log_format: str, level: str, secrets: t.Iterable[str] = ()) -> None:
    """The service's logs (see `service_logging.configure`), with aiohttp's own lines trimmed."""
    configure(log_format, level, secrets)
    logging.getLogger("aiohttp.access").disabled = True  # every delivery is logged once, below
    logging.getLogger("aiohttp.server").addFilter(_BadRequests())


def build_app(
    router: WebhookRouter,
    health: t.Callable[[], None],
    metrics: RouterMetrics,
    *,
    request_timeout: float = 8.0,
    executor: t.Optional[concurrent.futures.Executor] = None,
) -> web.Application:
    """The aiohttp application; `health()` raises QueueError while MongoDB is unreachable."""
    pool = executor or concurrent.futures.ThreadPoolExecutor(WORKERS, thread_name_prefix="router")
    limit = router.max_body_bytes

    async def in_pool(fn: t.Callable[..., t.Any], *args: t.Any) -> t.Any:
        return await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(pool, fn, *args), request_timeout)

    async def webhook(request: web.Request) -> web.Response:
        started = time.perf_counter()
        reply: t.Optional[Reply] = None
        if request.content_length is not None and request.content_length > limit:
            reply = Reply(413, Result.TOO_LARGE, f"the body is over {limit} bytes")
        else:
            try:
                body = await request.read()  # raises once more than client_max_size bytes arrived
            except web.HTTPRequestEntityTooLarge:
                reply = Reply(413, Result.TOO_LARGE, f"the body is over {limit} bytes")
        if reply is None:
            try:
                reply = t.cast(Reply, await in_pool(router.handle, request.headers, body))
            except asyncio.TimeoutError:
                reply = Reply(503, Result.UNAVAILABLE, f"no answer within {request_timeout:g}s")
        seconds = time.perf_counter() - started
        metrics.record(reply, seconds)
        LOGGER.log(
            logging.WARNING if reply.status >= 500 else logging.INFO,
            "delivery",
            extra={
                "fields": {
                    "status": reply.status,
                    "result": reply.result.value,
                    "event": reply.event or None,
                    "action": reply.action or None,
                    "delivery": reply.delivery_id,
                    "job": reply.job_id,
                    "pool": reply.pool,
                    "ms": round(seconds * 1000, 2),
                    "detail": reply.message if reply.status >= 400 else None,
                }
            },
        )
        response = web.json_response(reply.body(), status=reply.status)
        if reply.result is Result.TOO_LARGE:
            response.force_close()  # do not read the rest of an oversized body
        return response

    async def healthz(_request: web.Request) -> web.Response:
        try:
            await in_pool(health)
        except (QueueError, asyncio.TimeoutError) as exc:
            detail = str(exc) or f"no answer within {request_timeout:g}s"
            return web.json_response({"status": "unavailable", "message": detail[:300]}, status=503)
        return web.json_response({"status": "ok"})

    async def metrics_page(_request: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})

    async def shut_pool(_app: web.Application) -> None:
        if executor is None:
            pool.shutdown(wait=True)

    app = web.Application(client_max_size=limit)
    app.router.add_post("/webhook", webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_page)
    app.on_cleanup.append(shut_pool)
    return app


async def serve(app: web.Application, settings: RouterSettings) -> None:
    """Serve until SIGTERM or SIGINT, then finish the requests in flight and return."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=settings.shutdown_timeout)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        ports = sorted({address[1] for address in runner.addresses if isinstance(address, tuple)})
        LOGGER.info("listening", extra={"fields": {"host": settings.host, "port": ports[0] if ports else None}})
        await stop.wait()
        LOGGER.info("stopping: finishing the requests in flight", extra={"fields": {}})
    finally:
        await runner.cleanup()


def open_router(settings: RouterSettings, sink: t.Optional[JobSink] = None) -> t.Tuple[WebhookRouter, MongoAccess]:
    """The router over the job queue of the configured MongoDB (or over `sink`)."""
    mongo = MongoAccess(settings.mongodb_uri, server_timeout=settings.mongodb_timeout, appname="ghr-webhook-router")
    queue = JobQueue(
        mongo, database=settings.database, jobs_collection=settings.jobs_collection, doorbell=settings.doorbell
    )
    router = WebhookRouter(settings.routes, settings.secrets, sink or queue, max_body_bytes=settings.max_body_bytes)
    return router, mongo


def main(argv: t.Optional[t.Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="webhook-router", description="Route GitHub workflow_job webhooks to pools.")
    parser.add_argument("--config", required=True, help="the YAML configuration file")
    parser.add_argument("--check", action="store_true", help="validate the configuration and exit")
    args = parser.parse_args(argv)
    if SERVICE_IMPORT_ERROR is not None:
        sys.stderr.write(f"webhook-router: a requirement is missing: {SERVICE_IMPORT_ERROR}\n")
        return 2
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        sys.stderr.write(f"webhook-router: {args.config}: {exc}\n")
        return 2
    if args.check:
        sys.stdout.write(
            f"webhook-router: {args.config}: {len(settings.routes)} pools, {len(settings.secrets)} secrets: ok\n"
        )
        return 0
    secrets = [secret.decode("utf-8", errors="replace") for secret in settings.secrets]
    configure_logging(settings.log_format, settings.log_level, [*secrets, settings.mongodb_uri])
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series: noise
    for path in settings.exposed_files:
        LOGGER.warning("secret file readable by others than its owner", extra={"fields": {"path": path}})
    try:
        router, mongo = open_router(settings)
    except QueueError as exc:
        LOGGER.error("cannot open the job queue", extra={"fields": {"detail": str(exc)}})
        return 2
    try:
        app = build_app(router, mongo.ping, RouterMetrics(), request_timeout=settings.request_timeout)
        asyncio.run(serve(app, settings))
    except OSError as exc:  # the address is taken or not ours
        LOGGER.error(
            "cannot listen", extra={"fields": {"host": settings.host, "port": settings.port, "detail": str(exc)}}
        )
        return 1
    finally:
        mongo.close()
    LOGGER.info("stopped", extra={"fields": {}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
