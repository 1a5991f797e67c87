"""API errors carry plain text: markup from error bodies is stripped in one place."""

from __future__ import annotations

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import (
    CloudError,
    GithubError,
    QuotaExceededError,
    RateLimitError,
    plain_text,
)

WEBOB_PAGE = (
    "<html>\n <head>\n  <title>404 Not Found</title>\n </head>\n <body>\n  <h1>404 Not Found</h1>\n"
    "  The resource could not be found.<br /><br />\n\n\n\n </body>\n</html>"
)


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        # webob's JSON error bodies carry the HTML of its page template in "message".
        ("The resource could not be found.<br /><br />\n\n\n", "The resource could not be found."),
        (WEBOB_PAGE, "404 Not Found The resource could not be found."),
        ("<p>Bad &amp; <b>bold</b></p>", "Bad & bold"),
        ("<!-- a comment -->Gateway\r\n\ttimeout", "Gateway timeout"),
        ("<script>alert(1)</script>Blocked", "Blocked"),
        # Not markup: kept as it is.
        ("expected <class 'int'>, got <name>", "expected <class 'int'>, got <name>"),
        ("value < 5 and > 1", "value < 5 and > 1"),
        ("No valid host was found. ", "No valid host was found."),
        ("", ""),
    ],
)
def test_plain_text(text: str, plain: str) -> None:
    assert plain_text(text) == plain


@pytest.mark.parametrize("error_type", [CloudError, QuotaExceededError, GithubError])
def test_every_api_error_is_plain_text(error_type: type[CloudError] | type[GithubError]) -> None:
    err = error_type("DELETE /servers/x", "The resource could not be found.<br /><br />\n\n\n", 404)
    assert err.detail == "The resource could not be found."
    assert str(err).endswith("failed (HTTP 404): The resource could not be found.")
    assert "<" not in str(err) and "\n" not in str(err)


def test_rate_limit_errors_too() -> None:
    err = RateLimitError("POST x", "<h1>Too many</h1>\n requests", 429, 60.0)
    assert str(err) == "GitHub POST x failed (HTTP 429): Too many requests"


def test_an_empty_detail_says_so() -> None:
    assert str(CloudError("GET /", "<br />")) == "OpenStack GET / failed: no message"
