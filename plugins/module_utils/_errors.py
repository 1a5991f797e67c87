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
