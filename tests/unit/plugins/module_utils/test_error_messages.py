"""Error messages name the problem: attempts and time of a timeout, a summarised connection failure,
the Keystone call rather than the call it happened inside."""

from __future__ import annotations

import typing as t

import keystoneauth1.exceptions as ks_exc
import pytest
import requests

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import (
    GithubError,
    attempts_text,
    connection_problem,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._github_transport import (
    GithubAuth,
    GithubTransport,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._openstack import (
    authentication_call,
    names_hint,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._retry import RetryPolicy

URLLIB3_REFUSED = (
    "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: /repos/o/r/actions/runners"
    " (Caused by NewConnectionError('<urllib3.connection.HTTPConnection object at 0x7f2c1b2e1d90>: Failed to"
    " establish a new connection: [Errno 111] Connection refused'))"
)


@pytest.mark.parametrize(
    ("raw", "summary"),
    [
        (URLLIB3_REFUSED, "cannot connect to 127.0.0.1:9: connection refused"),
        (
            "HTTPSConnectionPool(host='ghe.example', port=443): Max retries exceeded with url: /api/v3 (Caused by"
            ' NameResolutionError("<urllib3.connection.HTTPSConnection object at 0x7f>: Failed to resolve'
            " 'ghe.example' ([Errno -2] Name or service not known)\"))",
            "cannot connect to ghe.example:443: the host name does not resolve",
        ),
        (
            "Unable to establish connection to https://keystone.example:5000/v3/auth/tokens: ... [SSL:"
            " CERTIFICATE_VERIFY_FAILED] certificate verify failed",
            "cannot connect to keystone.example:5000: the TLS certificate is not trusted",
        ),
        (
            "HTTPConnectionPool(host='10.0.0.1', port=8774): Read timed out. (read timeout=30)",
            "10.0.0.1:8774: no answer in time (read timeout)",
        ),
        ("something else entirely", "something else entirely"),
    ],
)
def test_urllib3_text_is_summarised(raw: str, summary: str) -> None:
    assert connection_problem(raw) == summary


def test_attempts_text() -> None:
    assert attempts_text(1, 0.2) == "1 attempt in 0 s"
    assert attempts_text(4, 126.4) == "4 attempts in 126 s"


def transport_raising(error: Exception, attempts: int) -> GithubTransport:
    transport = GithubTransport(
        GithubAuth(token="ghp_" + "A" * 36),
        retry=RetryPolicy(attempts=attempts, base=0.0, cap=0.0),
        sleep=lambda s: None,
    )

    def fail(*args: t.Any, **kwargs: t.Any) -> t.NoReturn:
        raise error

    transport._requester.requestJsonAndCheck = fail  # type: ignore[method-assign]
    return transport


def test_a_github_timeout_says_how_many_attempts_and_how_long() -> None:
    transport = transport_raising(requests.exceptions.ReadTimeout("read timed out"), attempts=4)
    with pytest.raises(GithubError) as info:
        transport.request("GET", "/repos/o/r/actions/runners")
    assert info.value.detail.startswith("timed out: no answer within 30 s per attempt (4 attempts in ")
    assert info.value.detail.endswith(" s)")


def test_a_github_connection_failure_is_summarised_with_its_attempts() -> None:
    transport = transport_raising(requests.exceptions.ConnectionError(URLLIB3_REFUSED), attempts=3)
    with pytest.raises(GithubError) as info:
        transport.request("GET", "/repos/o/r/actions/runners")
    message = str(info.value)
    assert message.startswith("GitHub GET /repos/o/r/actions/runners failed: connection failed (3 attempts in ")
    assert message.endswith("): cannot connect to 127.0.0.1:9: connection refused")
    assert "HTTPConnectionPool" not in message and "0x7f" not in message


def test_keystone_failures_are_named_as_the_authentication_call() -> None:
    refused = ks_exc.ConnectFailure(
        f"Unable to establish connection to http://127.0.0.1:9/v3/auth/tokens: {URLLIB3_REFUSED}"
    )
    assert authentication_call(refused) == "authentication (POST http://127.0.0.1:9/v3/auth/tokens)"
    rejected = ks_exc.Unauthorized(
        "The request you have made requires authentication.", url="http://k:5000/v3/auth/tokens"
    )
    assert authentication_call(rejected) == "authentication (POST http://k:5000/v3/auth/tokens)"
    assert (
        authentication_call(ks_exc.DiscoveryFailure("Could not find versioned identity endpoints")) == "authentication"
    )
    assert authentication_call(ks_exc.NotFound("no server", url="http://nova:8774/v2.1/servers/x")) is None


def test_names_hint_lists_a_short_list_and_the_close_names_of_a_long_one() -> None:
    assert names_hint("flavors", "m1.smal", ["m1.small", "m1.tiny"]) == " (flavors: m1.small, m1.tiny)"
    many = [f"f{i}" for i in range(30)] + ["m1.small"]
    assert names_hint("flavors", "m1.smal", many) == " (did you mean 'm1.small'?)"
    assert names_hint("flavors", "zzzz", many) == ""
    assert names_hint("security groups", "x", []) == " (there are no security groups)"
