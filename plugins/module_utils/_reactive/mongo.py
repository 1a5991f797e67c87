# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The MongoDB connection of the reactive path: bounded waits on every call, one error type.

Every call runs under `pymongo.timeout`, so server selection, connection and the
server-side work together take at most `server_timeout` seconds; an unreachable or
slow server fails the call with a `QueueError` instead of hanging a consumer.
"""

from __future__ import annotations

import datetime
import traceback
import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import QueueError

PYMONGO_IMPORT_ERROR: t.Optional[str]
try:
    import pymongo
    import pymongo.errors
    from bson.codec_options import CodecOptions

    HAS_PYMONGO = True
    PYMONGO_IMPORT_ERROR = None
except ImportError:
    HAS_PYMONGO = False
    PYMONGO_IMPORT_ERROR = traceback.format_exc()

T = t.TypeVar("T")
_UTC = datetime.timezone.utc
DEFAULT_DATABASE = "github_runners"
DEFAULT_SERVER_TIMEOUT = 5.0


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(_UTC)


def is_duplicate_key(exc: BaseException) -> bool:
    return HAS_PYMONGO and isinstance(exc, pymongo.errors.DuplicateKeyError)


class MongoAccess:
    """A MongoDB client (given, or opened from a URI and then owned) and the calls made through it."""

    def __init__(
        self,
        client_or_uri: t.Any,
        *,
        server_timeout: float = DEFAULT_SERVER_TIMEOUT,
        appname: str = "selfhosted.github_runners",
    ) -> None:
        if not HAS_PYMONGO:
            raise ImportError(f"pymongo is required: {PYMONGO_IMPORT_ERROR}")
        if server_timeout <= 0:
            raise ValueError("server_timeout must be positive")
        self.server_timeout = server_timeout
        self._owned = isinstance(client_or_uri, str)
        self.uri: t.Optional[str] = client_or_uri if self._owned else None  # for clients of their own (the doorbell)
        if self._owned:
            ms = int(server_timeout * 1000)
            try:
                self.client: t.Any = pymongo.MongoClient(
                    client_or_uri,
                    timeoutMS=ms,
                    serverSelectionTimeoutMS=ms,
                    connectTimeoutMS=ms,
                    appname=appname,
                    connect=False,  # the first call connects, within its timeout
                )
            except (pymongo.errors.PyMongoError, ValueError, TypeError) as exc:
                # pymongo's messages about a bad URI never repeat its password.
                raise QueueError(f"MongoDB connection string is not usable: {str(exc)[:300]}") from None
        else:
            self.client = client_or_uri
        self._codec: t.Any = CodecOptions(tz_aware=True, tzinfo=_UTC)

    def collection(self, database: str, name: str) -> t.Any:
        """A collection handle that reads times as aware UTC datetimes."""
        return self.client[database].get_collection(name, codec_options=self._codec)

    def call(self, what: str, fn: t.Callable[[], T]) -> T:
        """Run `fn` (one or a few MongoDB operations) within the timeout; failures become QueueError.

        `what` names the operation and collection for the message. A DuplicateKeyError that `fn`
        does not handle itself is a failure like any other.
        """
        try:
            with pymongo.timeout(self.server_timeout):
                return fn()
        except pymongo.errors.PyMongoError as exc:
            raise QueueError(f"MongoDB {what}: {type(exc).__name__}: {str(exc)[:300]}") from None

    def ping(self) -> None:
        """Check that the server answers (QueueError when it does not), for health checks."""
        self.call("ping", lambda: self.client.admin.command("ping"))

    def close(self) -> None:
        """Close the client if this object opened it."""
        if self._owned:
            self.client.close()
