# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors of the core. Each carries what a user needs to act on it, never a secret."""

from __future__ import annotations

import typing as t


class RunnerError(Exception):
    """Base of every error the core raises on purpose."""


class ConfigError(RunnerError):
    """Invalid configuration; `field` is the dotted path of the bad field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ApiError(RunnerError):
    """A remote API refused or failed a call.

    `call` names the operation (e.g. ``POST repos/o/r/actions/runners/generate-jitconfig``),
    `status` the HTTP status when there was one, `detail` the remote message
    (GitHub `message`, Nova `fault`).
    """

    service = "api"

    def __init__(self, call: str, detail: str, status: t.Optional[int] = None) -> None:
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
