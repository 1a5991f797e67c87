# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secrets out of messages and logs: the one redaction of the core.

The libraries log request and response bodies at DEBUG: PyGithub every response (a JIT
registration's `encoded_jit_config`), keystoneauth every request (a server's `user_data`,
which carries the JIT config). `protect_logs` installs, once per process, a log record
factory that masks secrets in every record before any handler or filter sees it, whichever
logger made it and however logging is configured later. Every entry point (the module
base, the daemons) calls it first; the clients use `redact` for their error messages.
"""

from __future__ import annotations

import logging
import re
import threading
import typing as t

MASK = "***"
# Credentials by their shape: GitHub tokens, JWTs (App and installation auth).
_CREDENTIALS = re.compile(
    r"(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)"
)
# Secrets by their field name, in JSON, Python reprs and key=value text: the value is masked.
_SECRET_FIELDS = re.compile(
    r"""(["']?[\w.:-]*(?:jit_?config|user_data|password|adminpass|secret|private_key|token)["']?\s*[:=]\s*)"""
    r"""(["'])(?:\\.|(?!\2).)*\2""",
    re.IGNORECASE,
)
# The runner's command line in a user data script.
_JIT_ARGUMENT = re.compile(r"(--jitconfig[\s=]+)(\S+)")

_known: t.Set[str] = set()
_lock = threading.Lock()
_installed = False


def redact(text: str, secrets: t.Iterable[str] = ()) -> str:
    """`text` with the given secrets, credentials and secret fields' values masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = _SECRET_FIELDS.sub(lambda match: f"{match.group(1)}{match.group(2)}{MASK}{match.group(2)}", text)
    text = _JIT_ARGUMENT.sub(lambda match: f"{match.group(1)}{MASK}", text)
    return _CREDENTIALS.sub(MASK, text)


def protect_logs(secrets: t.Iterable[str] = ()) -> None:
    """From now on, mask secrets in every log record of this process; `secrets` are masked too.

    Idempotent: a later call only adds secrets (a token or App key read once the options are known).
    """
    global _installed
    with _lock:
        _known.update(secret for secret in secrets if secret)
        if _installed:
            return
        make_record = logging.getLogRecordFactory()

        def redacting_record(*args: t.Any, **kwargs: t.Any) -> logging.LogRecord:
            record = make_record(*args, **kwargs)
            _redact_record(record)
            return record

        logging.setLogRecordFactory(redacting_record)
        _installed = True


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a bad format: logging reports it when a handler formats the record
        return
    with _lock:
        secrets = tuple(_known)
    cleaned = redact(message, secrets)
    if cleaned != message:
        record.msg, record.args = cleaned, None
