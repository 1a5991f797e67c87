"""The one redaction: secrets out of messages and out of every log record, from every entry point."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
import typing as t

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._logging import protect_logs, redact

TOKEN = "ghp_" + "T" * 36
JIT = "eyJydW5uZXIiOiJjaS1zbWFsbCJ9" + "A" * 40  # base64 JSON: no dots, no JWT shape


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (json.dumps({"runner": {"id": 7}, "encoded_jit_config": JIT}), '"runner": {"id": 7}'),
        (repr({"name": "ci1-small-0123456789ab", "user_data": JIT}), "'name': 'ci1-small-0123456789ab'"),
        ('{"server": {"OS-EXT-SRV-ATTR:user_data": "' + JIT + '", "adminPass": "' + JIT + '"}}', '"server"'),
        (f'{{"note": "a \\"quoted\\" word", "token": "{JIT}\\"more"}}', '"note": "a \\"quoted\\" word"'),
        (f"./run.sh --jitconfig {JIT} && poweroff", "./run.sh --jitconfig *** && poweroff"),
        (f"GHR_JIT_CONFIG='{JIT}'", "GHR_JIT_CONFIG='***'"),
        (f"Authorization: token {TOKEN}", "Authorization: token ***"),
    ],
)
def test_redact_masks_secrets_by_field_and_by_shape(text: str, kept: str) -> None:
    cleaned = redact(text)
    assert JIT not in cleaned and TOKEN not in cleaned
    assert kept in cleaned


def test_redact_masks_the_given_secrets_and_leaves_the_rest() -> None:
    key = "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----"
    assert redact(f"bad key {key} here", [key, ""]) == "bad key *** here"
    harmless = '{"access_tokens_url": "https://x/app/installations/1/access_tokens", "total_count": 3}'
    assert redact(harmless) == harmless


@pytest.fixture
def debug_stream(fresh_log_protection: None) -> t.Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("github.Requester")
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)
    logger.setLevel(saved[0])
    logger.propagate = saved[1]


def test_protected_logs_carry_no_secret_whatever_logger_made_them(
    debug_stream: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = debug_stream
    logger.debug("%s ==> %s", "POST /generate-jitconfig", json.dumps({"encoded_jit_config": JIT}))
    assert JIT in stream.getvalue()  # unprotected, the library's body reaches the log
    protect_logs()
    logger.debug("%s ==> %s", "POST /generate-jitconfig", json.dumps({"encoded_jit_config": JIT}))
    logging.getLogger("keystoneauth.session.request").addHandler(logging.StreamHandler(stream))
    logging.getLogger("keystoneauth.session.request").warning("REQ: -d '%s'", json.dumps({"user_data": JIT}))
    secret = "s3cret-app-key-text"
    protect_logs([secret])  # a secret known once the options are read
    logger.debug("key %s", secret)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4
    assert all(JIT not in line and secret not in line for line in lines[1:])


def test_records_without_secrets_keep_their_arguments(fresh_log_protection: None) -> None:
    protect_logs()
    record = logging.getLogger("ghr.test").makeRecord("ghr.test", logging.INFO, "f", 1, "listed %d runners", (3,), None)
    assert (record.msg, record.args) == ("listed %d runners", (3,))


MODULE_SCRIPT = textwrap.dedent(
    """
    import io, logging, sys
    from ansible.module_utils.testing import patch_module_args
    from ansible_collections.selfhosted.github_runners.plugins.module_utils._module import RunnersModule

    stream = io.StringIO()
    logging.basicConfig(level=logging.DEBUG, stream=stream)
    token = sys.argv[1]
    with patch_module_args({"controller_id": "ci1", "github_token": token}):
        module = RunnersModule({}, openstack=False)
    module.github()  # reads the credentials
    logging.getLogger("github.Requester").warning("GET /runners %s ==> 200 %s", token, '{"token": "%s"}' % token)
    sys.stdout.write(stream.getvalue())
    """
)


def test_the_module_base_protects_the_logs_of_every_module() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", MODULE_SCRIPT, TOKEN],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "GET /runners" in proc.stdout
    assert TOKEN not in proc.stdout
