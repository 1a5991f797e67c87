# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors of the core. Each carries what a user needs to act on it, never a secret."""

from __future__ import annotations

import html
import re
import typing as t

# Markup that API servers and proxies put in error bodies (webob's pages and its JSON
# "message" alike: "The resource could not be found.<br /><br />"). Only HTML tag names:
# texts such as "<class 'int'>" in a message stay as they are.
_HIDDEN_BLOCKS = re.compile(r"<(head|script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_COMMENTS = re.compile(r"<!--.*?-->", re.DOTALL)
_TAGS = re.compile(
    r"</?(?:a|b|body|br|center|code|div|em|h[1-6]|head|hr|html|i|li|meta|ol|p|pre|span|strong|table|td|th|title|tr|ul)"
    r"\b[^<>]*>",
    re.IGNORECASE,
)
_WHITESPACE = re.compile(r"\s+")


def plain_text(text: str) -> str:
    """`text` without HTML markup or entities, its whitespace collapsed to single spaces."""
    text = _COMMENTS.sub(" ", _HIDDEN_BLOCKS.sub(" ", text))
    text = html.unescape(_TAGS.sub(" ", text))
    return _WHITESPACE.sub(" ", text).strip()


class RunnerError(Exception):
    """Base of every error the core raises on purpose."""


class ConfigError(RunnerError):
    """Invalid configuration; `field` is the dotted path of the bad field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class UnresolvedError(ConfigError):
    """A name in a pool (flavor, image, network, security group) that the cloud cannot resolve."""


class ApiError(RunnerError):
    """A remote API refused or failed a call.

    `call` names the operation (e.g. ``POST repos/o/r/actions/runners/generate-jitconfig``),
    `status` the HTTP status when there was one, `detail` the remote message
    (GitHub `message`, Nova `fault`) as plain text: every API error passes here, so
    markup in a server's error body never reaches a user.
    """

    service = "api"

    def __init__(self, call: str, detail: str, status: t.Optional[int] = None) -> None:
        detail = plain_text(detail) or "no message"
        where = f"{self.service} {call}"
        code = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"{where} failed{code}: {detail}")
        self.call = call
        self.detail = detail
        self.status = status


class GithubError(ApiError):
    service = "GitHub"


class RateLimitError(GithubError):
    """The GitHub rate limit is (nearly) exhausted and the wait would be too long."""

    def __init__(self, call: str, detail: str, status: t.Optional[int], reset_in: float) -> None:
        super().__init__(call, detail, status)
        self.reset_in = reset_in


class CloudError(ApiError):
    service = "OpenStack"


class QuotaExceededError(CloudError):
    """Nova refused a create because the project quota would be exceeded."""


class LockError(RunnerError):
    """The pool lock is held by another reconcile."""


class QueueError(RunnerError):
    """The job queue refused or failed an operation: a bad job document, a lost lease, MongoDB down."""


# What urllib3 (through requests or keystoneauth) says about a failed connection, e.g.
# "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: /x (Caused by
# NewConnectionError(...: Failed to establish a new connection: [Errno 111] Connection refused))".
_POOL_HOST = re.compile(r"HTTPS?ConnectionPool\(host=['\"]?([^'\",)]+)['\"]?, port=(\d+)\)")
_URL_HOST = re.compile(r"https?://(\[[^\]]+\]|[^/:\s]+)(?::(\d+))?")
_CAUSES = (
    (re.compile(r"connection refused", re.I), "connection refused"),
    (
        re.compile(
            r"name or service not known|nodename nor servname|name resolution|getaddrinfo failed|NameResolution", re.I
        ),
        "the host name does not resolve",
    ),
    (re.compile(r"CERTIFICATE_VERIFY_FAILED|certificate verify failed", re.I), "the TLS certificate is not trusted"),
    (re.compile(r"SSLError|SSL:|TLS", re.I), "TLS handshake failed"),
    (re.compile(r"read timed out|ReadTimeout", re.I), "no answer in time (read timeout)"),
    (re.compile(r"timed out|ConnectTimeout", re.I), "timed out"),
    (re.compile(r"connection reset", re.I), "connection reset by the server"),
    (re.compile(r"RemoteDisconnected|closed connection without response", re.I), "the server closed the connection"),
    (re.compile(r"no route to host", re.I), "no route to host"),
    (re.compile(r"network is unreachable", re.I), "network is unreachable"),
)


def connection_problem(text: str) -> str:
    """A failed connection in a few words, e.g. ``cannot connect to 127.0.0.1:9: connection refused``.

    Raw urllib3 text (pool reprs, object addresses, nested causes) says the same at length; the
    text is returned as it is when it names no known cause.
    """
    reason = next((summary for pattern, summary in _CAUSES if pattern.search(text)), None)
    if reason is None:
        return text
    pool = _POOL_HOST.search(text)
    if pool is not None:
        host, port = pool.group(1), pool.group(2)
    else:
        url = _URL_HOST.search(text)
        if url is None:
            return f"cannot connect: {reason}"
        host, port = url.group(1), url.group(2)
    where = f"{host}:{port}" if port else host
    if reason.startswith("no answer"):
        return f"{where}: {reason}"  # connected; the answer did not come
    return f"cannot connect to {where}: {reason}"


def attempts_text(attempts: int, seconds: float) -> str:
    """How hard a call was tried, e.g. ``4 attempts in 126 s``."""
    return f"{attempts} attempt{'s' if attempts != 1 else ''} in {seconds:.0f} s"
