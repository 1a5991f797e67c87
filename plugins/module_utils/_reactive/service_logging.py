# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The logs of the collection's services (webhook router, reactive consumer): stderr, text or JSON lines.

Under systemd stderr goes to the journal. Every secret the service holds is masked by the
collection's log redaction before a line is written.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._logging import protect_logs


class _Formatter(logging.Formatter):
    """One line per record: text with ``key=value`` fields, or a JSON object."""

    def __init__(self, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        fields: t.Dict[str, t.Any] = dict(getattr(record, "fields", {}))
        if record.exc_info:
            fields["error"] = self.formatException(record.exc_info)
        if self.as_json:
            when = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
            line = {"time": when.isoformat(timespec="milliseconds"), "level": record.levelname.lower()}
            line.update({"logger": record.name, "message": record.getMessage(), **fields})
            return json.dumps(line, default=str)
        extra = "".join(f" {key}={value}" for key, value in fields.items() if value is not None)
        return f"{record.levelname} {record.getMessage()}{extra}"


def configure(log_format: str, level: str, secrets: t.Iterable[str] = ()) -> None:
    """Logs of the process to stderr as text or JSON lines, at `level`; `secrets` masked."""
    protect_logs(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(as_json=log_format == "json"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
