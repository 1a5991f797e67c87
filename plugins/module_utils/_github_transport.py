# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one request path to GitHub's REST API, on PyGithub's requester.

Every call goes through `GithubTransport.request`: one place that counts the call,
applies the timeout, retries 5xx and connection failures with jittered backoff,
waits out short rate limits, refuses mutating calls when the rate-limit budget is
nearly spent, paces mutating requests through a token bucket, holds them back after
a rate limit it did not wait out (until GitHub's reset, with jitter), and turns every
failure into `GithubError` with GitHub's `message` and never a token, JWT or JIT
config. `paginate` follows the `Link` header through the same path.

PyGithub's object model is not used: its objects complete themselves lazily and
`get_repo()` costs a GET, while a reconcile must spend exactly one request per
page of runners. Its requester gives auth (token or App installation token),
timeouts and the base URL for GitHub Enterprise Server.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import re
import threading
import time
import traceback
import typing as t
import urllib.parse

from ansible_collections.selfhosted.github_runners.plugins.module_utils._argspec import GITHUB_CREDENTIAL_ENV
from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import (
    ConfigError,
    GithubError,
    RateLimitError,
    attempts_text,
    connection_problem,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._logging import redact
from ansible_collections.selfhosted.github_runners.plugins.module_utils._ratelimit import GithubRate, TokenBucket
from ansible_collections.selfhosted.github_runners.plugins.module_utils._retry import RetryPolicy, jittered

GITHUB_IMPORT_ERROR: t.Optional[str]
try:
    import github
    import requests
    from github import Auth, GithubException

    HAS_GITHUB = True
    GITHUB_IMPORT_ERROR = None
except ImportError:
    HAS_GITHUB = False
    GITHUB_IMPORT_ERROR = traceback.format_exc()

DEFAULT_API_URL = "https://api.github.com"
USER_AGENT = "selfhosted.github_runners"
#: The REST API version the request and response shapes here follow.
API_VERSION = "2022-11-28"
PER_PAGE = 100
#: GitHub's advice when a secondary rate limit gives neither Retry-After nor a spent budget.
SECONDARY_LIMIT_WAIT = 60.0
DEFAULT_RETRY = RetryPolicy()
_UTC = datetime.timezone.utc
_IDEMPOTENT = frozenset({"GET", "HEAD", "DELETE"})
_MUTATING = frozenset({"POST", "PATCH", "PUT", "DELETE"})
_SECONDARY_LIMIT = re.compile(r"secondary rate limit|retry your request again later|wait a few minutes", re.I)


@dataclasses.dataclass(frozen=True)
class GithubAuth:
    """A token, or a GitHub App (id, PEM private key text, installation id). Secrets stay out of repr."""

    token: t.Optional[str] = dataclasses.field(default=None, repr=False)
    app_id: t.Optional[t.Union[int, str]] = None
    private_key: t.Optional[str] = dataclasses.field(default=None, repr=False)
    installation_id: t.Optional[int] = None

    def __post_init__(self) -> None:
        app = {
            "github_app_id": self.app_id,
            "github_app_private_key": self.private_key,
            "github_app_installation_id": self.installation_id,
        }
        if self.token:
            if any(v is not None for v in app.values()):
                raise ConfigError(
                    "github_token", "give either github_token or the github_app_* options of a GitHub App, not both"
                )
            return
        missing = [option for option, value in app.items() if value in (None, "")]
        if len(missing) == len(app):
            raise ConfigError("github_token", f"no GitHub credentials: {CREDENTIALS_WANTED}")
        if missing:
            raise ConfigError(
                missing[0],
                f"a GitHub App needs {' and '.join(_wanted(option) for option in missing)} too",
            )

    def secrets(self) -> t.Tuple[str, ...]:
        return tuple(s for s in (self.token, self.private_key) if s)


def _wanted(option: str) -> str:
    """An option with its environment variable; the private key with its file alternative."""
    if option == "github_app_private_key":
        path = "github_app_private_key_path"
        return f"{option} or {path} (env {GITHUB_CREDENTIAL_ENV[option]} or {GITHUB_CREDENTIAL_ENV[path]})"
    return f"{option} (env {GITHUB_CREDENTIAL_ENV[option]})"


#: What GitHub authentication takes, with the environment variables that stand in for the options.
CREDENTIALS_WANTED = (
    f"give {_wanted('github_token')}, or all of {_wanted('github_app_id')}, {_wanted('github_app_private_key')}"
    f" and {_wanted('github_app_installation_id')}"
)


def _next_page_params(link_header: t.Optional[str]) -> t.Optional[t.Dict[str, str]]:
    """The query parameters of the `rel="next"` link, or None on the last page."""
    if not link_header:
        return None
    for link in requests.utils.parse_header_links(link_header):
        if link.get("rel") == "next" and link.get("url"):
            query = urllib.parse.urlsplit(link["url"]).query
            return dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    return None


class GithubTransport:
    """Requests to one GitHub (github.com or a GitHub Enterprise Server API URL) with one credential.

    Thread-safe (the reconcile creates and deletes runners concurrently); requests are serialized.
    """

    def __init__(
        self,
        auth: GithubAuth,
        api_url: str = DEFAULT_API_URL,
        timeout: float = 30,
        *,
        verify: t.Union[bool, str] = True,
        retry: RetryPolicy = DEFAULT_RETRY,
        max_rate_limit_wait: float = 60.0,
        rate_limit_floor: int = 50,
        pool_size: t.Optional[int] = None,
        write_bucket: t.Optional[TokenBucket] = None,
        sleep: t.Callable[[float], None] = time.sleep,
        clock: t.Callable[[], float] = time.time,
    ) -> None:
        """`write_bucket` paces the mutating requests; share one between transports of one credential."""
        if not HAS_GITHUB:
            raise ImportError(f"PyGithub is required: {GITHUB_IMPORT_ERROR}")
        self.api_url = api_url.rstrip("/")
        # PyGithub wants whole seconds; round up so a small timeout never becomes 0 (= none).
        self.timeout = max(1, math.ceil(timeout))
        self.retry = retry
        self.max_rate_limit_wait = max_rate_limit_wait
        self.rate_limit_floor = rate_limit_floor
        self._sleep = sleep
        self._clock = clock
        self._secrets = auth.secrets()
        self._lock = threading.Lock()
        # One request at a time: PyGithub's connection object keeps the pending request in
        # attributes (not thread-safe), and GitHub asks integrators to make requests serially
        # to stay clear of secondary rate limits. Sleeps between retries happen outside it.
        self._http_lock = threading.Lock()
        self._calls = 0
        self._remaining: t.Optional[int] = None  # from the last response's X-RateLimit-* headers
        self._reset_at: t.Optional[float] = None
        self._write_bucket = write_bucket or TokenBucket()
        self._write_wait = 0.0
        self._not_before: t.Optional[float] = None  # no mutating request before then (time.time)
        self._gh = github.Github(
            base_url=self.api_url,
            auth=self._pygithub_auth(auth),
            timeout=self.timeout,
            user_agent=USER_AGENT,
            per_page=PER_PAGE,
            verify=verify,
            # Ours is the only retry: PyGithub's GithubRetry would retry and sleep on its own,
            # and its request spacing (0.25 s, 1 s between writes) would slow every reconcile.
            retry=None,
            pool_size=pool_size,
            seconds_between_requests=None,
            seconds_between_writes=None,
            lazy=True,
            api_version=API_VERSION,
        )
        self._requester = self._gh.requester

    def _pygithub_auth(self, auth: GithubAuth) -> t.Any:
        if auth.token is not None:
            return Auth.Token(auth.token)
        if auth.app_id is None or auth.private_key is None or auth.installation_id is None:
            raise ConfigError("github_token", f"no GitHub credentials: {CREDENTIALS_WANTED}")
        app = Auth.AppAuth(auth.app_id, auth.private_key)
        try:
            app.create_jwt()  # fail now, without a request, if the key cannot sign
        except Exception as exc:  # cryptography/PyJWT raise several types; none carries the key
            raise ConfigError("github_app_private_key", f"cannot sign a JWT with it ({type(exc).__name__})") from None
        transport = self

        class CountingInstallationAuth(Auth.AppInstallationAuth):
            """Counts the installation-token requests that PyGithub makes inside other calls."""

            def _get_installation_authorization(self) -> t.Any:
                transport._count()
                return super()._get_installation_authorization()

        return CountingInstallationAuth(app, int(auth.installation_id))

    # Observability -----------------------------------------------------------------
    @property
    def total_calls(self) -> int:
        """HTTP requests made so far (retries, pages and installation tokens included)."""
        with self._lock:
            return self._calls

    @property
    def rate_limit_remaining(self) -> t.Optional[int]:
        with self._lock:
            return self._remaining

    def rate_status(self) -> GithubRate:
        with self._lock:
            not_before = self._not_before
            return GithubRate(
                remaining=self._remaining,
                write_wait=self._write_wait,
                not_before=None if not_before is None else datetime.datetime.fromtimestamp(not_before, _UTC),
            )

    def hold_mutations_until(self, until: datetime.datetime) -> None:
        """Send no mutating request before `until` (a rate limit a former run was told about)."""
        with self._lock:
            self._not_before = max(self._not_before or 0.0, until.timestamp())

    def _count(self) -> None:
        with self._lock:
            self._calls += 1

    # The one request path --------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        params: t.Optional[t.Dict[str, t.Any]] = None,
        body: t.Optional[t.Dict[str, t.Any]] = None,
    ) -> t.Tuple[t.Dict[str, t.Any], t.Any]:
        """(headers, JSON body) of one call, retried as the policy allows; GithubError on failure."""
        call = f"{method} {path}"
        attempts = 0
        started = time.monotonic()

        def attempt() -> t.Tuple[t.Dict[str, t.Any], t.Any]:
            nonlocal attempts
            attempts += 1
            if method in _MUTATING:
                self._respect_hold(call)
                if method == "POST":  # deletions clean up: they may use the reserve
                    self._respect_floor(call)
                self._pace()
            self._count()
            try:
                with self._http_lock:
                    headers, data = self._requester.requestJsonAndCheck(method, path, parameters=params, input=body)
            except GithubException as exc:
                self._observe(exc.headers or {})
                raise
            self._observe(headers)
            return headers, data

        try:
            return self.retry.call(attempt, lambda exc: self._retryable(method, exc), sleep=self._sleep)
        except GithubException as exc:
            error = self._translate(call, exc)
            if isinstance(error, RateLimitError):
                self._hold(error.reset_in)
            raise error from None
        except json.JSONDecodeError as exc:  # requests' own JSONDecodeError is one too
            raise GithubError(call, f"the answer is not JSON: {exc.msg} at character {exc.pos}") from None
        except requests.exceptions.Timeout:
            tried = attempts_text(attempts, time.monotonic() - started)
            raise GithubError(call, f"timed out: no answer within {self.timeout} s per attempt ({tried})") from None
        except requests.exceptions.RequestException as exc:
            tried = attempts_text(attempts, time.monotonic() - started)
            problem = connection_problem(self._redact(str(exc)))
            raise GithubError(call, f"connection failed ({tried}): {problem}") from None

    def _retryable(self, method: str, exc: BaseException) -> t.Optional[float]:
        # A POST that may have been carried out (5xx, read timeout, connection lost after
        # sending) is not repeated: a second JIT config would register a second runner.
        idempotent = method in _IDEMPOTENT
        if isinstance(exc, GithubException):
            if exc.status >= 500:
                return 0.0 if idempotent else None
            wait = self._rate_limit_wait(exc)
            return wait if wait is not None and wait <= self.max_rate_limit_wait else None
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return 0.0  # nothing was sent
        if isinstance(exc, (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError)):
            return 0.0 if idempotent else None
        return None

    def _rate_limit_wait(self, exc: GithubException) -> t.Optional[float]:
        """Seconds to wait when `exc` is a primary or secondary rate limit, else None."""
        if exc.status not in (403, 429):
            return None
        headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
        retry_after = headers.get("retry-after")
        if retry_after is not None:
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                pass
        if headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset"):
            try:
                return max(0.0, float(headers["x-ratelimit-reset"]) - self._clock())
            except ValueError:
                pass
        if exc.status == 429 or _SECONDARY_LIMIT.search(self._message(exc)):
            return SECONDARY_LIMIT_WAIT
        return None

    def _observe(self, headers: t.Mapping[str, t.Any]) -> None:
        lowered = {k.lower(): v for k, v in headers.items()}
        try:
            remaining = int(float(lowered["x-ratelimit-remaining"]))
            reset_at = float(lowered["x-ratelimit-reset"])
        except (KeyError, ValueError):
            return
        with self._lock:
            self._remaining, self._reset_at = remaining, reset_at

    def _pace(self) -> None:
        """One token of the write bucket; waits for it when the burst is spent."""
        wait = self._write_bucket.reserve()
        if wait > 0:
            self._sleep(wait)
            with self._lock:
                self._write_wait += wait

    def _hold(self, wait: float) -> None:
        """After a rate limit not waited out: no mutating request until it is over (plus jitter)."""
        until = self._clock() + jittered(wait, self.retry.base, self.retry.cap)
        with self._lock:
            self._not_before = max(self._not_before or 0.0, until)

    def _respect_hold(self, call: str) -> None:
        with self._lock:
            not_before = self._not_before
        wait = 0.0 if not_before is None else not_before - self._clock()
        if wait > 0:
            when = datetime.datetime.fromtimestamp(t.cast(float, not_before), _UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            raise RateLimitError(call, f"not sent: GitHub's rate limit asked for no change before {when}", None, wait)

    def _respect_floor(self, call: str) -> None:
        """Before a creation: keep `rate_limit_floor` requests for listing and clean-up."""
        with self._lock:
            remaining, reset_at = self._remaining, self._reset_at
        if remaining is None or reset_at is None or remaining >= self.rate_limit_floor:
            return
        wait = max(0.0, reset_at - self._clock())
        if wait > self.max_rate_limit_wait:
            raise RateLimitError(
                call,
                f"only {remaining} API requests left (floor {self.rate_limit_floor}); the rate limit resets in "
                f"{wait:.0f} s, longer than max_rate_limit_wait ({self.max_rate_limit_wait:.0f} s)",
                None,
                wait,
            )
        self._sleep(jittered(wait, self.retry.base, self.retry.cap))
        with self._lock:
            self._remaining = None  # a new window; the next response tells the new budget

    def _message(self, exc: GithubException) -> str:
        data = exc.data
        if isinstance(data, dict) and data.get("message"):
            return str(data["message"])
        return str(exc.message or "")

    def _translate(self, call: str, exc: GithubException) -> GithubError:
        message = self._redact(self._message(exc)) or "no message"
        wait = self._rate_limit_wait(exc)
        if wait is not None:
            return RateLimitError(
                call,
                f"rate limited: {message}; retry in {wait:.0f} s"
                f" (max_rate_limit_wait {self.max_rate_limit_wait:.0f} s)",
                exc.status,
                wait,
            )
        return GithubError(call, message, exc.status)

    def _redact(self, text: str) -> str:
        # Whatever GitHub or the connection echoes back, no credential reaches an error message.
        return redact(text, self._secrets)

    def paginate(
        self,
        path: str,
        key: t.Optional[str],
        params: t.Optional[t.Dict[str, t.Any]] = None,
        *,
        allow: t.Callable[[], None] = lambda: None,
    ) -> t.Iterator[t.Any]:
        """Items of every page (under `key`, or the page itself when None), one request per page.

        Pages follow the `Link` header's next URL, whose query is sent to our own path so that
        every page goes through the same connection, timeout and retry. `allow` is called before
        each page's request; it raises to stop the listing.
        """
        page: t.Optional[t.Dict[str, t.Any]] = {**(params or {}), "per_page": PER_PAGE}
        while page is not None:
            allow()
            headers, data = self.request("GET", path, params=page)
            items = data if key is None else data.get(key) if isinstance(data, dict) else None
            if not isinstance(items, list):
                # Never read as "nothing listed": runners that seem gone get their VMs deleted.
                what = "a list" if key is None else f"an object with a list under {key!r}"
                raise GithubError(f"GET {path}", f"the answer is not {what}", 200)
            yield from items
            lowered = {k.lower(): v for k, v in headers.items()}
            following = _next_page_params(lowered.get("link"))
            page = {**page, **following} if following is not None else None

    def close(self) -> None:
        self._gh.close()
