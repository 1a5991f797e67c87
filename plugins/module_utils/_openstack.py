# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""OpenStack client for runner VMs, on openstacksdk's compute/image/network proxies.

One connection per run, configured like the openstack.cloud collection (clouds.yaml
`cloud`, or `auth`/`auth_type`/... and the OS_* environment, which openstacksdk reads
itself). The proxies are used rather than the cloud layer because the cloud layer's
`list_servers` adds image, flavor, address and security-group look-ups per server;
here a listing is one server-side filtered `GET /servers/detail` per Nova page.

Every call goes through `CloudClient._call`: one place that counts it, retries 409/503
and connection failures with jittered backoff (openstacksdk's own retries are off), and
turns failures into `CloudError` with Nova's message, or `QuotaExceededError`.
"""

from __future__ import annotations

import base64
import collections
import collections.abc
import dataclasses
import datetime
import difflib
import itertools
import re
import threading
import time
import traceback
import typing as t
import urllib.parse

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import (
    PoolSpec,
    is_uuid,
    network_choice,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import (
    CloudError,
    QuotaExceededError,
    UnresolvedError,
    attempts_text,
    connection_problem,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._identity import (
    controller_tag,
    parse_timestamp,
    parse_vm_metadata,
    pool_tag,
    server_pool,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import VmInfo
from ansible_collections.selfhosted.github_runners.plugins.module_utils._retry import RetryPolicy

OPENSTACK_IMPORT_ERROR: t.Optional[str]
try:
    import keystoneauth1.exceptions as ks_exc
    import openstack
    import openstack.exceptions as os_exc

    HAS_OPENSTACK = True
    OPENSTACK_IMPORT_ERROR = None
except ImportError:
    HAS_OPENSTACK = False
    OPENSTACK_IMPORT_ERROR = traceback.format_exc()

APP_NAME = "selfhosted.github_runners"
APP_VERSION = "0.1.0"
#: Tags at server create need 2.52; filtering the listing by tags needs 2.26.
COMPUTE_MICROVERSION = "2.52"
#: Nova refuses base64-encoded user data longer than this.
MAX_USER_DATA = 65535
DEFAULT_RETRY = RetryPolicy()
_EPOCH = datetime.datetime.fromtimestamp(0, datetime.timezone.utc)

LookupKind = t.Literal["flavor", "image", "network", "security_group"]


@dataclasses.dataclass(frozen=True)
class CloudOptions:
    """Connection options with the openstack.cloud names; None = clouds.yaml / OS_* / openstacksdk default."""

    cloud: t.Optional[str] = None
    auth: t.Optional[t.Mapping[str, t.Any]] = dataclasses.field(default=None, repr=False)
    auth_type: t.Optional[str] = None
    region_name: t.Optional[str] = None
    interface: t.Optional[str] = None
    validate_certs: t.Optional[bool] = None
    ca_cert: t.Optional[str] = None
    api_timeout: t.Optional[float] = None

    def connect_kwargs(self) -> t.Dict[str, t.Any]:
        """Keyword arguments of `openstack.connect`, without the unset ones."""
        kwargs = {
            "cloud": self.cloud,
            "auth": dict(self.auth) if self.auth else None,
            "auth_type": self.auth_type,
            "region_name": self.region_name,
            "interface": self.interface,
            "verify": self.validate_certs,
            "cacert": self.ca_cert,
            "api_timeout": self.api_timeout,
        }
        return {k: v for k, v in kwargs.items() if v is not None}


def vm_from_server(server: t.Mapping[str, t.Any], controller_id: str) -> t.Optional[VmInfo]:
    """Our view of one Nova server (Nova's field names); None when the server is not ours.

    Checked here, not only by the listing's tag filter: a cloud or proxy that ignores
    ``?tags=`` must not make us claim another controller's servers.
    """
    name = server.get("name")
    pool = server_pool(controller_id, name, server.get("tags") or ())
    if pool is None:
        return None
    metadata = parse_vm_metadata(server.get("metadata"))
    created = metadata.created_at or parse_timestamp(server.get("created")) or _EPOCH
    fault = server.get("fault")
    return VmInfo(
        id=str(server["id"]),
        name=str(name),
        status=str(server.get("status") or "UNKNOWN").upper(),
        created_at=created,
        pool=pool,
        runner_id=metadata.runner_id,
        job_id=metadata.job_id,
        fault=str(fault["message"]) if isinstance(fault, dict) and fault.get("message") else None,
        scope=metadata.scope,
        spec=metadata.spec,
        flavor=_reference(server.get("flavor"), "original_name", "name", "id"),
        image=_reference(server.get("image"), "id"),
    )


def _reference(value: object, *keys: str) -> t.Optional[str]:
    """The first of `keys` set in a Nova reference (a flavor or image object, or its id as a string)."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, collections.abc.Mapping):
        found = next((value.get(key) for key in keys if value.get(key)), None)
        return None if found is None else str(found)
    return None


def pool_lookups(pool: PoolSpec) -> t.List[t.Tuple[str, LookupKind, str]]:
    """The (field, kind, name) look-ups a pool needs before its first runner is registered.

    The flavor is always looked up (creating needs its id and disk size). An image, network or
    security group given as a UUID goes to Nova as it is, and so do ``none``/``auto`` networks.
    """
    lookups: t.List[t.Tuple[str, LookupKind, str]] = [(pool.field("flavor"), "flavor", pool.flavor)]
    if not is_uuid(pool.image):
        lookups.append((pool.field("image"), "image", pool.image))
    for index, network in enumerate(() if network_choice(pool.networks) else pool.networks):
        if not is_uuid(network):
            lookups.append((pool.field(f"networks[{index}]"), "network", network))
    for index, group in enumerate(pool.security_groups):
        if not is_uuid(group):
            lookups.append((pool.field(f"security_groups[{index}]"), "security_group", group))
    return lookups


#: keystoneauth ends its messages with the status that CloudError gives anyway.
_STATUS_SUFFIX = re.compile(r"\s*\(HTTP \d{3}\)$")
_TOKEN_URL = re.compile(r"https?://\S*?/auth/tokens")


def authentication_call(exc: BaseException) -> t.Optional[str]:
    """The call to name when `exc` comes from Keystone authentication (made inside another call), else None.

    openstacksdk authenticates lazily, inside the first request that needs a token: without
    this, a wrong password or an unreachable Keystone reads as a failed ``GET /servers/detail``.
    """
    url = str(getattr(exc, "url", None) or "")
    if "/auth/tokens" not in url:
        found = _TOKEN_URL.search(str(exc))
        url = found.group(0) if found else ""
    if url:
        return f"authentication (POST {url})"
    if HAS_OPENSTACK and isinstance(exc, (ks_exc.AuthorizationFailure, ks_exc.DiscoveryFailure)):
        return "authentication"
    return None


class _NoSingleMatch(CloudError):
    """The cloud has no resource of that name, or more than one."""


class _Reference(t.NamedTuple):
    """An image or network given by id."""

    id: str


def _disable_sdk_retries(session: t.Any) -> None:
    """Make our retry layer the only one, on the connection's keystoneauth session.

    openstacksdk up to 4.14 retries every proxy request once on a connection failure
    or timeout (`Proxy.request(connect_retries=1)`), whatever the connection options
    say; a repeated server create after a timeout could boot a second VM.
    """
    original = session.request

    def request(url: str, method: str, **kwargs: t.Any) -> t.Any:
        kwargs["connect_retries"] = 0
        return original(url, method, **kwargs)

    session.request = request


class CloudClient:
    """Runner VM operations on one OpenStack cloud. Thread-safe."""

    def __init__(
        self,
        conn: t.Any,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: t.Callable[[float], None] = time.sleep,
    ) -> None:
        self.conn = conn
        self.retry = retry
        self._sleep = sleep
        self._lock = threading.Lock()
        self._calls: collections.Counter[str] = collections.Counter()
        self._total_calls = 0
        self._list_bytes = 0
        # Look-up answers for the run, failures (CloudError) included.
        self._resolved: t.Dict[t.Tuple[str, str], t.Any] = {}
        self._resolve_locks: t.Dict[t.Tuple[str, str], threading.Lock] = {}
        self._hints: t.Dict[t.Tuple[str, str], str] = {}  # the names listed after a failed look-up
        # Count every HTTP request the session makes (auth and version discovery included).
        conn.session.session.hooks["response"].append(self._on_response)
        _disable_sdk_retries(conn.session)

    @classmethod
    def connect(cls, options: CloudOptions, **kwargs: t.Any) -> CloudClient:
        """One `openstack.connect` for the run; CloudError when the configuration is unusable."""
        if not HAS_OPENSTACK:
            raise ImportError(f"openstacksdk is required: {OPENSTACK_IMPORT_ERROR}")
        try:
            conn = openstack.connect(
                app_name=APP_NAME,
                app_version=APP_VERSION,
                compute_api_version=COMPUTE_MICROVERSION,
                # Ours is the only retry layer (keystoneauth retries Glance 5xx five times by default).
                connect_retries=0,
                status_code_retries=0,
                image_status_code_retries=0,
                **options.connect_kwargs(),
            )
        except (os_exc.SDKException, ks_exc.ClientException) as exc:
            raise CloudError("connect", str(exc)) from None
        return cls(conn, **kwargs)

    # Observability -----------------------------------------------------------------
    @property
    def calls(self) -> t.Dict[str, int]:
        """Operations attempted so far (retries included); look-ups count once per name."""
        with self._lock:
            return dict(self._calls)

    @property
    def total_calls(self) -> int:
        """HTTP requests made by the connection, Keystone and version discovery included."""
        with self._lock:
            return self._total_calls

    @property
    def list_bytes(self) -> int:
        """Bytes of server-listing response bodies so far (admin listings carry every server's user data)."""
        with self._lock:
            return self._list_bytes

    def _on_response(self, response: t.Any, *args: t.Any, **kwargs: t.Any) -> None:
        listing = response.request.method == "GET" and urllib.parse.urlsplit(response.request.url).path.endswith(
            "/servers/detail"
        )
        size = len(response.content) if listing else 0
        with self._lock:
            self._total_calls += 1
            self._list_bytes += size

    # The one call path --------------------------------------------------------------
    def _call(self, operation: str, call: str, fn: t.Callable[[], t.Any], *, idempotent: bool = True) -> t.Any:
        attempts = 0
        started = time.monotonic()

        def attempt() -> t.Any:
            nonlocal attempts
            attempts += 1
            with self._lock:
                self._calls[operation] += 1
            return fn()

        def retryable(exc: BaseException) -> t.Optional[float]:
            # A create that may have been carried out (503, timeout, connection lost after
            # sending) is not repeated: it could boot a second VM with the same JIT config.
            if not idempotent:
                return None
            if isinstance(exc, os_exc.HttpException):
                return 0.0 if exc.status_code in (409, 503) else None
            if isinstance(exc, (ks_exc.ConnectTimeout, ks_exc.ConnectFailure)):
                return 0.0
            return None

        try:
            return self.retry.call(attempt, retryable, sleep=self._sleep)
        except os_exc.HttpException as exc:
            raise self._translate(call, exc.status_code, exc.details or exc.message) from None
        except ks_exc.HttpError as exc:
            call = authentication_call(exc) or call
            raise self._translate(call, exc.http_status, exc.details or exc.message) from None
        except ks_exc.ConnectTimeout as exc:
            tried = attempts_text(attempts, time.monotonic() - started)
            raise CloudError(
                authentication_call(exc) or call, f"timed out: no answer within the API timeout ({tried})"
            ) from None
        except ks_exc.ConnectionError as exc:
            tried = attempts_text(attempts, time.monotonic() - started)
            raise CloudError(
                authentication_call(exc) or call, f"connection failed ({tried}): {connection_problem(str(exc))}"
            ) from None
        except (os_exc.SDKException, ks_exc.ClientException) as exc:
            raise CloudError(authentication_call(exc) or call, connection_problem(str(exc))) from None
        except (ValueError, LookupError, TypeError, AttributeError) as exc:
            # Raised while the answer is read (by openstacksdk or by us): not JSON, or not the
            # shape the API documents. A call that cannot be read did not give what we need.
            raise CloudError(call, f"the answer could not be read ({type(exc).__name__}): {str(exc)[:200]}") from None

    @staticmethod
    def _translate(call: str, status: t.Optional[int], detail: t.Any) -> CloudError:
        message = _STATUS_SUFFIX.sub("", str(detail or "no message").strip())  # the status is given once
        if status in (403, 413) and "quota" in message.lower():
            return QuotaExceededError(call, message, status)
        return CloudError(call, message, status)

    # Servers ---------------------------------------------------------------------------
    def list_servers(self, controller_id: str, pool: t.Optional[str] = None) -> t.List[VmInfo]:
        """Our servers (of one pool when given): Nova filters by tags, one request per Nova page."""
        tags = [controller_tag(controller_id)] + ([pool_tag(pool)] if pool is not None else [])
        query = ",".join(tags)

        def fetch() -> t.List[t.Optional[VmInfo]]:
            # Read inside the call: an answer of the wrong shape fails the listing with its name.
            return [
                vm_from_server(
                    {
                        "id": s.id,
                        "name": s.name,
                        "status": s.status,
                        "created": s.created_at,
                        "metadata": s.metadata,
                        "tags": s.tags,
                        "fault": s.fault,
                        "flavor": s.flavor,
                        "image": s.image,
                    },
                    controller_id,
                )
                for s in self.conn.compute.servers(details=True, tags=query)
                # Nova lists a server being deleted (task_state deleting, then DELETED) until it
                # is gone: it is going already, and a second DELETE would only be a wasted call.
                if s.task_state != "deleting" and str(s.status).upper() != "DELETED"
            ]

        vms = self._call("list_servers", "GET /servers/detail", fetch)
        return [vm for vm in vms if vm is not None and (pool is None or vm.pool == pool)]

    def create_server(
        self,
        name: str,
        pool: PoolSpec,
        user_data: str,
        metadata: t.Mapping[str, str],
        tags: t.Sequence[str],
    ) -> str:
        """Boot one server without waiting for it; returns its id."""
        encoded = base64.b64encode(user_data.encode("utf-8")).decode("ascii")
        if len(encoded) > MAX_USER_DATA:
            raise CloudError(
                "POST /servers",
                f"user data is {len(encoded)} bytes base64-encoded; Nova accepts at most {MAX_USER_DATA}",
            )
        flavor = self._find("flavor", pool.flavor)
        image = self._find("image", pool.image)
        attrs: t.Dict[str, t.Any] = {
            "name": name,
            "flavor_id": flavor.id,
            # `none` / `auto` go to Nova as they are (2.37); otherwise one NIC per network.
            "networks": network_choice(pool.networks)
            or [{"uuid": self._find("network", net).id} for net in pool.networks],
            "user_data": encoded,
            "metadata": dict(metadata),
            "tags": list(tags),
        }
        # Nova resolves security group names and ids itself: no look-up needed.
        if pool.security_groups:
            attrs["security_groups"] = [{"name": sg} for sg in pool.security_groups]
        if pool.key_name:
            attrs["key_name"] = pool.key_name
        if pool.availability_zone:
            attrs["availability_zone"] = pool.availability_zone
        if pool.boot_from_volume:
            size = pool.volume_size or int(getattr(flavor, "disk", 0) or 0)
            if size <= 0:
                raise CloudError(
                    "POST /servers", f"boot from volume needs a volume size (flavor {pool.flavor} has no disk)"
                )
            attrs["block_device_mapping"] = [
                {
                    "boot_index": 0,
                    "uuid": image.id,
                    "source_type": "image",
                    "destination_type": "volume",
                    "volume_size": size,
                    "delete_on_termination": True,
                }
            ]
        else:
            attrs["image_id"] = image.id
        server = self._call(
            "create_server", "POST /servers", lambda: self.conn.compute.create_server(**attrs), idempotent=False
        )
        return str(server.id)

    def delete_server(self, server_id: str) -> t.Literal["deleted", "not_found"]:
        """Ask Nova to delete the server (it goes away asynchronously)."""
        try:
            self._call(
                "delete_server",
                f"DELETE /servers/{server_id}",
                lambda: self.conn.compute.delete_server(server_id, ignore_missing=False),
            )
        except CloudError as exc:
            if exc.status == 404:
                return "not_found"
            raise
        return "deleted"

    # Look-ups, once per name per run ---------------------------------------------------------
    def resolve(self, pool: PoolSpec) -> None:
        """Look up the pool's flavor, image, networks and security groups; UnresolvedError names the field.

        A name the cloud does not have comes with the names it has (a short list) or the close
        ones; that listing is made only then, never on the way to a create.
        """
        for field, kind, name in pool_lookups(pool):
            try:
                self._find(kind, name)
            except _NoSingleMatch as exc:
                hint = ""
                if exc.status == 404:
                    with self._lock:
                        cached = self._hints.get((kind, name))
                    hint = self._existing_names(kind, name) if cached is None else cached
                    with self._lock:
                        self._hints[(kind, name)] = hint
                raise UnresolvedError(field, exc.detail + hint) from None
            except CloudError as exc:
                raise UnresolvedError(field, f"cannot look up {_label(kind)} {name!r}: {exc}") from None

    def _existing_names(self, kind: LookupKind, missing: str) -> str:
        """`` (flavors: m1.tiny, m1.small)`` for a short list, ``(did you mean ...?)`` for a long one, or ''."""
        # (proxy, method): only the proxy of this kind is touched, as for the look-up itself.
        listers = {
            "flavor": ("compute", "flavors"),
            "image": ("image", "images"),
            "network": ("network", "networks"),
            "security_group": ("network", "security_groups"),
        }

        def names() -> t.List[str]:
            proxy, method = listers[kind]
            scope = {"project_id": self.conn.current_project_id} if kind == "security_group" else {}
            found = itertools.islice(getattr(getattr(self.conn, proxy), method)(**scope), MAX_NAMES_LISTED)
            return sorted({str(item.name) for item in found if getattr(item, "name", None)})

        try:
            known = self._call(f"list_{kind}s", f"list {_label(kind)}s", names)
        except CloudError:
            return ""  # the names are a help, not the error
        return names_hint(f"{_label(kind)}s", missing, known)

    def _find(self, kind: LookupKind, name_or_id: str) -> t.Any:
        if kind in ("image", "network") and is_uuid(name_or_id):
            return _Reference(name_or_id)  # an id is used as is: no Glance or Neutron call
        # (proxy, method): only the proxy of this kind is touched, as a cloud may lack an Image or Network API.
        finders = {
            "flavor": ("compute", "find_flavor"),
            "image": ("image", "find_image"),
            "network": ("network", "find_network"),
            "security_group": ("network", "find_security_group"),
        }
        call = f"find {_label(kind)} {name_or_id}"

        def find() -> t.Any:
            # Security groups of the project only: an admin sees every project's `default`.
            scope = {"project_id": self.conn.current_project_id} if kind == "security_group" else {}
            proxy, method = finders[kind]
            try:
                return getattr(getattr(self.conn, proxy), method)(name_or_id, ignore_missing=False, **scope)
            except os_exc.NotFoundException as exc:
                if exc.response is not None:  # a failed request, not an empty answer
                    raise
                raise _NoSingleMatch(call, f"no {_label(kind)} named {name_or_id!r}", 404) from None
            except os_exc.DuplicateResource:
                raise _NoSingleMatch(
                    call, f"more than one {_label(kind)} is named {name_or_id!r}: give its id", 409
                ) from None

        key = (kind, name_or_id)
        with self._lock:
            lock = self._resolve_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._resolved:
                try:
                    self._resolved[key] = self._call(f"find_{kind}", call, find)
                except CloudError as exc:
                    self._resolved[key] = exc  # a failed look-up fails the same way for the rest of the run
            found = self._resolved[key]
        if isinstance(found, CloudError):
            raise found
        return found

    def close(self) -> None:
        self.conn.close()


#: Names read when a look-up fails (to list the names that exist, or the close ones).
MAX_NAMES_LISTED = 500
#: Up to this many names are all listed; from a longer list only the close ones.
SHORT_LIST = 10


def names_hint(kinds: str, missing: str, known: t.Sequence[str]) -> str:
    """What to add to "no flavor named 'm1.smal'": the names there are when few, else the close ones."""
    if not known:
        return f" (there are no {kinds})"
    if len(known) <= SHORT_LIST:
        return f" ({kinds}: {', '.join(known)})"
    close = difflib.get_close_matches(missing, known, n=3)
    return f" (did you mean {' or '.join(repr(name) for name in close)}?)" if close else ""


def _label(kind: LookupKind) -> str:
    return kind.replace("_", " ")
