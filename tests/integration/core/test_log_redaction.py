"""With DEBUG logging on, the libraries' request and response logs carry no JIT config and no token."""

from __future__ import annotations

import base64
import io
import logging
import typing as t
import uuid

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import parse_pool
from ansible_collections.selfhosted.github_runners.plugins.module_utils._github import GithubAuth, GithubClient
from ansible_collections.selfhosted.github_runners.plugins.module_utils._logging import protect_logs
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import Scope, ScopeKind
from ansible_collections.selfhosted.github_runners.plugins.module_utils._openstack import CloudClient, CloudOptions
from ansible_collections.selfhosted.github_runners.plugins.module_utils._userdata import render_user_data
from tests.integration.conftest import SandboxHandle

pytestmark = pytest.mark.sandbox


@pytest.fixture
def debug_log(fresh_log_protection: None) -> t.Iterator[io.StringIO]:
    """Every logger at DEBUG into one stream, as a daemon started with --debug would log."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root, pygithub = logging.getLogger(), logging.getLogger("github")  # PyGithub pins its own at INFO
    levels = root.level, pygithub.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    pygithub.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(levels[0])
    pygithub.setLevel(levels[1])


def test_library_debug_logs_carry_no_jit_config_and_no_token(
    sandbox: SandboxHandle, debug_log: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = sandbox.env["GITHUB_TOKEN"]
    protect_logs([token])  # what every entry point does first
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", sandbox.env["OS_CLIENT_CONFIG_FILE"])
    github = GithubClient(GithubAuth(token=token), api_url=sandbox.env["GITHUB_API_URL"], timeout=5)
    cloud = CloudClient.connect(CloudOptions(cloud=sandbox.env["OS_CLOUD"], api_timeout=5))
    repo = Scope(ScopeKind.REPOSITORY, sandbox.env["GITHUB_REPOSITORY"])
    pool = parse_pool(
        {
            "name": "itlog",
            "repository": repo.name,
            "labels": ["self-hosted", "itlog"],
            "flavor": "m1.small",
            "image": "ubuntu-24.04-runner",
            "networks": ["runners-net"],
        }
    )
    name = f"itlog-{uuid.uuid4().hex[:12]}"
    runner, config = github.generate_jit_config(repo, name, pool.labels, 1)
    user_data = render_user_data(pool, config)
    server = cloud.create_server(name, pool, user_data, {}, ["ghr-controller=itlog", "ghr-pool=itlog"])
    cloud.delete_server(server)
    github.delete_runner(repo, runner.id)
    github.close()
    cloud.close()

    output = debug_log.getvalue()
    # The libraries did log the bodies (so the test can fail) ...
    assert "generate-jitconfig" in output and "encoded_jit_config" in output
    assert "user_data" in output
    # ... and no secret got through.
    for secret in (config, base64.b64encode(user_data.encode()).decode(), token):
        assert secret not in output
