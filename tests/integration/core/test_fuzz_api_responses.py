"""Fuzzed API answers: malformed JSON and wrong shapes from the simulators, through the real clients.

The sandbox answers one call with what hypothesis draws (status 200/201/202, any body);
the client must return well-typed data or raise the core's own error (a `RunnerError`
whose message names the call), never a KeyError, TypeError or JSON decoding error.
"""

from __future__ import annotations

import json
import typing as t

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import RunnerError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._github import GithubAuth, GithubClient
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import GithubRunner, Scope, ScopeKind
from ansible_collections.selfhosted.github_runners.plugins.module_utils._openstack import CloudClient, CloudOptions

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
RUNNERS = "/repos/{owner}/{repo}/actions/runners"
JIT = "/repos/{owner}/{repo}/actions/runners/generate-jitconfig"

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


def _runner_like() -> st.SearchStrategy[t.Any]:
    valid = {"id": 1, "name": "r", "os": "linux", "status": "online", "busy": False, "labels": [{"name": "x"}]}
    keys = st.sampled_from(sorted(valid))
    return (
        st.builds(
            lambda drop, replace, value: {
                **{k: v for k, v in valid.items() if k != drop},
                **({replace: value} if replace else {}),
            },
            keys,
            st.none() | keys,
            _json,
        )
        | _json
    )


def _body(key: str, item: st.SearchStrategy[t.Any]) -> st.SearchStrategy[str]:
    """Malformed JSON, or JSON of the right outline with items of any shape, or any JSON."""
    malformed = st.sampled_from(["", "{", "[1,", "<html>Bad Gateway</html>", "null", '{"total_count": 1', "\x00\xff"])
    shaped = st.builds(lambda items: json.dumps({"total_count": len(items), key: items}), st.lists(item, max_size=3))
    return malformed | shaped | _json.map(json.dumps) | item.map(lambda i: json.dumps({key: i}))


@pytest.fixture(scope="module")
def github(sandbox: t.Any) -> t.Iterator[GithubClient]:
    client = GithubClient(
        GithubAuth(token=sandbox.env["GITHUB_TOKEN"]), api_url=sandbox.env["GITHUB_API_URL"], timeout=5
    )
    yield client
    client.close()


@pytest.fixture(scope="module")
def cloud(sandbox: t.Any) -> t.Iterator[CloudClient]:
    import os

    os.environ.setdefault("OS_CLIENT_CONFIG_FILE", sandbox.env["OS_CLIENT_CONFIG_FILE"])
    client = CloudClient.connect(CloudOptions(cloud=sandbox.env["OS_CLOUD"], api_timeout=5))
    yield client
    client.close()


def _answer_once(sandbox: t.Any, service: str, method: str, route: str, status: int, body: str) -> None:
    sandbox.clear_faults()
    sandbox.add_fault(kind="status", service=service, method=method, route=route, status=status, raw_body=body, count=1)


def _repo(sandbox: t.Any) -> Scope:
    return Scope(ScopeKind.REPOSITORY, sandbox.env["GITHUB_REPOSITORY"])


@FUZZ
@given(body=_body("runners", _runner_like()))
# Found by this test: each once escaped as a JSONDecodeError, KeyError, TypeError or AttributeError,
# or ("null", no "runners") listed no runner at all, so that busy runners' VMs looked finished.
@example(body="{")
@example(body="null")
@example(body="{}")
@example(body='{"total_count": 1, "runners": [{}]}')
@example(body='{"total_count": 1, "runners": [1]}')
@example(body='{"runners": [{"id": 1, "name": "r", "busy": false, "labels": ["x"]}]}')
@example(body='{"runners": [{"id": 1, "name": "r", "busy": "no", "labels": []}]}')
def test_a_runner_listing_of_any_shape_gives_runners_or_a_clear_error(
    sandbox: t.Any, fresh_sandbox_state: t.Any, github: GithubClient, body: str
) -> None:
    _answer_once(sandbox, "github", "GET", RUNNERS, 200, body)
    if body in ("null", "{}"):
        with pytest.raises(RunnerError):
            github.list_runners(_repo(sandbox))
        return
    try:
        runners = github.list_runners(_repo(sandbox))
    except RunnerError as exc:
        assert "GitHub GET" in str(exc) and "actions/runners" in str(exc), str(exc)
    else:
        assert all(isinstance(r, GithubRunner) and isinstance(r.id, int) and isinstance(r.name, str) for r in runners)
        assert all(isinstance(label, str) for r in runners for label in r.labels)


@FUZZ
@given(body=_body("runner", _runner_like()) | _json.map(lambda v: json.dumps({"runner": v, "encoded_jit_config": v})))
@example(body="[1,")  # found by this test: a JSONDecodeError escaped
def test_a_jit_answer_of_any_shape_gives_a_config_or_a_clear_error(
    sandbox: t.Any, fresh_sandbox_state: t.Any, github: GithubClient, body: str
) -> None:
    _answer_once(sandbox, "github", "POST", JIT, 201, body)
    try:
        runner, config = github.generate_jit_config(_repo(sandbox), "fuzz-0123456789ab", ["self-hosted"])
    except RunnerError as exc:
        assert "GitHub POST" in str(exc), str(exc)
    else:
        assert isinstance(runner, GithubRunner) and isinstance(config, str)


def _server_like() -> st.SearchStrategy[t.Any]:
    valid = {
        "id": "5b7e",
        "name": "it-p-0123456789ab",
        "status": "ACTIVE",
        "created": "2026-01-01T00:00:00Z",
        "metadata": {"ghr_runner_id": "1"},
        "tags": ["ghr-controller=it", "ghr-pool=p"],
    }
    keys = st.sampled_from(sorted(valid))
    return (
        st.builds(
            lambda drop, replace, value: {
                **{k: v for k, v in valid.items() if k != drop},
                **({replace: value} if replace else {}),
            },
            keys,
            st.none() | keys,
            _json,
        )
        | _json
    )


@FUZZ
@given(body=_body("servers", _server_like()))
# Found by this test: each once escaped from openstacksdk as an AttributeError or TypeError.
@example(body='{"total_count": 1, "servers": [null]}')
@example(body='{"servers": [{"id": "5b7e", "name": "it-p-0123456789ab", "status": "ACTIVE", "tags": 5}]}')
@example(body="{")
def test_a_server_listing_of_any_shape_gives_vms_or_a_clear_error(
    sandbox: t.Any, fresh_sandbox_state: t.Any, cloud: CloudClient, body: str
) -> None:
    _answer_once(sandbox, "nova", "GET", "/servers/detail", 200, body)
    try:
        vms = cloud.list_servers("it")
    except RunnerError as exc:
        assert "OpenStack" in str(exc), str(exc)
    else:
        assert all(isinstance(vm.name, str) and isinstance(vm.id, str) for vm in vms)
