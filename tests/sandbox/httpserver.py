"""A small threaded HTTP/1.1 server with a route table, shared by every simulator.

Every request passes through `Service.dispatch`, which counts it, applies injected
faults (latency, error status, connection reset, hang) and hands the response to
an optional validator before it is sent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import json
import re
import socket
import threading
import time
import typing as t
import urllib.parse

if t.TYPE_CHECKING:
    from tests.sandbox.world import World

Handler = t.Callable[["Request"], "Response"]


@dataclasses.dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    params: dict[str, str] = dataclasses.field(default_factory=dict)
    route: str = ""  # the matched route template, e.g. /servers/{server_id}
    base_url: str = ""  # scheme://host:port of this service
    injected_body: bool = False  # answered with a fault's own body: deliberately off-schema, not validated

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> t.Any:
        if not self.body:
            raise HttpError(400, "request body is empty")
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise HttpError(400, f"request body is not valid JSON: {exc}") from None


@dataclasses.dataclass
class Response:
    status: int = 200
    body: t.Any = None  # JSON-able object, bytes, or None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


class HttpError(Exception):
    """Raised by handlers; the service turns it into its own error body shape."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, body: t.Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.body = body


_PARAM = re.compile(r"\{(\w+)\}")


class Router:
    def __init__(self) -> None:
        self._routes: list[tuple[str, str, re.Pattern[str], Handler]] = []

    def add(self, method: str, template: str, handler: Handler) -> None:
        # {name} matches one path segment; {name:path} would be YAGNI.
        pattern = re.compile("^" + _PARAM.sub(r"(?P<\1>[^/]+)", template.rstrip("/") or "/") + "/?$")
        self._routes.append((method.upper(), template, pattern, handler))

    def route(self, method: str, template: str) -> t.Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self.add(method, template, fn)
            return fn

        return deco

    def match(self, method: str, path: str) -> tuple[Handler, str, dict[str, str]] | str | None:
        """The handler, template and params; the string "405" when only the method is wrong."""
        wrong_method = False
        for m, template, pattern, handler in self._routes:
            found = pattern.match(path)
            if not found:
                continue
            if m != method:
                wrong_method = True
                continue
            params = {k: urllib.parse.unquote(v) for k, v in found.groupdict().items()}
            return handler, template, params
        return "405" if wrong_method else None

    def templates(self) -> list[tuple[str, str]]:
        return [(route[0], route[1]) for route in self._routes]


class Service:
    """One simulated API on its own port. Subclasses fill `router` and `error_response`."""

    name = "service"
    counted = True  # False for the control API: tests read counters through it

    def __init__(self, world: World) -> None:
        self.world = world
        self.router = Router()
        self.base_url = ""

    # Hooks for subclasses -------------------------------------------------
    def error_response(self, req: Request, status: int, message: str) -> Response:
        return Response(status, {"error": message})

    def before(self, req: Request) -> None:
        """Runs before the handler (auth, rate limits); may raise HttpError."""

    def after(self, req: Request, resp: Response) -> None:
        """Runs on every response before it is sent (headers, validation)."""

    def strip_prefix(self, path: str) -> str:
        return path

    # Dispatch ------------------------------------------------------------------
    def dispatch(self, req: Request, conn: socket.socket | None = None) -> Response | None:
        path = self.strip_prefix(req.path)
        found = self.router.match(req.method, path)
        if found is None or found == "405":
            status = 404 if found is None else 405
            req.route = "<unmatched>"
            if self.counted:
                self.world.counters.count(self.name, req.method, req.route)
            resp = self.error_response(req, status, "Not Found" if status == 404 else "Method Not Allowed")
            self.after(req, resp)
            return resp
        assert not isinstance(found, str)
        handler, req.route, req.params = found
        if self.counted:
            self.world.counters.count(self.name, req.method, req.route)
        fault = self.world.faults.take_http(self.name, req.method, req.route)
        if fault is not None:
            req.injected_body = fault.kind == "status" and (fault.raw_body is not None or fault.body is not None)
            if fault.delay:
                time.sleep(fault.delay)
            if fault.kind == "reset":
                return None  # the caller closes the socket without answering
            if fault.kind == "hang":
                time.sleep(fault.hang_seconds)
                return None
            if fault.kind == "status":
                if fault.raw_body is not None:
                    resp = Response(fault.status, fault.raw_body.encode(), {"Content-Type": "application/json"})
                elif fault.body is not None:
                    resp = Response(fault.status, fault.body, dict(fault.headers))
                else:
                    resp = self.error_response(req, fault.status, fault.message or "injected fault")
                resp.headers.update(fault.headers)
                self.after(req, resp)
                return resp
        try:
            self.before(req)
            resp = handler(req)
        except HttpError as exc:
            resp = (
                Response(exc.status, exc.body, {})
                if exc.body is not None
                else self.error_response(req, exc.status, exc.message)
            )
            resp.headers.update(exc.headers)
        self.after(req, resp)
        return resp


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without TCP_NODELAY the body waits for the
    # client's delayed ACK (~40 ms) on every keep-alive request.
    disable_nagle_algorithm = True
    service: Service  # set on the per-server subclass

    def log_message(self, format: str, *args: t.Any) -> None:
        pass

    def _handle(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = Request(
            method=self.command,
            path=parsed.path,
            query=urllib.parse.parse_qs(parsed.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            base_url=self.service.base_url,
        )
        try:
            resp = self.service.dispatch(req, self.connection)
        except Exception as exc:  # a simulator bug must show, not hang the client
            resp = Response(500, {"error": f"sandbox internal error: {type(exc).__name__}: {exc}"})
        if resp is None:
            # Injected reset/hang: drop the connection without a response.
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        data = resp.encoded() if self.command != "HEAD" else b""
        self.send_response(resp.status)
        headers = {k.lower(): (k, v) for k, v in resp.headers.items()}
        if resp.body is not None and not isinstance(resp.body, bytes) and "content-type" not in headers:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        for name, value in headers.values():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(resp.encoded()) if self.command == "HEAD" else len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


@dataclasses.dataclass
class RunningServer:
    service: Service
    server: _Server
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve(service: Service, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Start `service` on a loopback port (0 = a free one) in a daemon thread."""
    handler = type(f"{service.name}Handler", (_Handler,), {"service": service})
    server = _Server((host, port), handler)
    running = RunningServer(
        service, server, threading.Thread(target=server.serve_forever, name=service.name, daemon=True)
    )
    service.base_url = running.url
    running.thread.start()
    return running
