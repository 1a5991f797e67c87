"""What the OpenStack simulators share: timestamps, ids, token checks and list paging."""

from __future__ import annotations

import datetime
import typing as t
import urllib.parse
import uuid

from tests.sandbox.httpserver import HttpError, Request, Response, Service

if t.TYPE_CHECKING:
    from tests.sandbox.openstack.identity import Identity
    from tests.sandbox.world import World

UNAUTHORIZED = "The request you have made requires authentication."
_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            409: "Conflict", 413: "Request Entity Too Large", 415: "Unsupported Media Type",
            500: "Internal Server Error", 503: "Service Unavailable"}  # fmt: skip


def new_id() -> str:
    return str(uuid.uuid4())


def isotime(ts: float) -> str:
    """Nova and Neutron style: 2024-05-01T12:00:00Z."""
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def isotime_us(ts: float) -> str:
    """Keystone style: 2024-05-01T12:00:00.000000Z."""
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def last_arg(req: Request, name: str) -> str | None:
    """The last value of a repeated query parameter, as webob's `dict.update(req.GET)` keeps it."""
    values = req.query.get(name)
    return values[-1] if values else None


def webob_html_error(status: int, message: str) -> Response:
    """The HTML page webob answers with (Glance's errors, Nova's unknown paths)."""
    title = f"{status} {_REASONS.get(status, 'Internal Server Error')}"
    page = f"<html>\n <head>\n  <title>{title}</title>\n </head>\n <body>\n  <h1>{title}</h1>\n  {message}<br /><br />\n\n\n\n </body>\n</html>"
    return Response(status, page.encode(), {"Content-Type": "text/html; charset=UTF-8"})


def keystone_error(status: int, title: str, message: str) -> dict[str, t.Any]:
    return {"error": {"code": status, "title": title, "message": message}}


def unauthorized(identity_url: str) -> HttpError:
    # keystonemiddleware answers like this on every service when the token is bad.
    return HttpError(
        401,
        UNAUTHORIZED,
        headers={"WWW-Authenticate": f'Keystone uri="{identity_url}"'},
        body=keystone_error(401, "Unauthorized", UNAUTHORIZED),
    )


def parse_limit(req: Request, max_limit: int, error: t.Callable[[str], HttpError]) -> int:
    raw = last_arg(req, "limit")
    if raw is None:
        return max_limit
    try:
        limit = int(raw)
    except ValueError:
        raise error(f"limit param must be an integer: {raw}") from None
    if limit < 0:
        raise error("limit param must be positive")
    return min(limit, max_limit)


def next_href(req: Request, path: str, marker: str, drop: tuple[str, ...] = ()) -> str:
    """A `next` link: the request's own query with the marker replaced."""
    params = [(k, v) for k, vs in req.query.items() if k != "marker" and k not in drop for v in vs]
    params.append(("marker", marker))
    return f"{req.base_url}{path}?{urllib.parse.urlencode(params)}"


class OpenStackService(Service):
    """Base of Nova, Glance and Neutron: every call but version discovery needs a valid token."""

    public_routes: frozenset[tuple[str, str]] = frozenset()

    def __init__(self, world: World, identity: Identity) -> None:
        super().__init__(world)
        self.identity = identity

    def before(self, req: Request) -> None:
        if (req.method, req.route) in self.public_routes:
            return
        token = req.header("x-auth-token")
        with self.world.lock:
            valid = token is not None and self.identity.validate(token) is not None
        if not valid:
            raise unauthorized(self.identity.public_url)

    def after(self, req: Request, resp: Response) -> None:
        resp.headers.setdefault("X-Openstack-Request-Id", f"req-{uuid.uuid4()}")
