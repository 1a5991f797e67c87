"""Nova (compute API v2.1) over HTTP: version discovery, microversions, servers, flavors, keypairs, limits."""

from __future__ import annotations

import re
import typing as t

from tests.sandbox.httpserver import HttpError, Request, Response
from tests.sandbox.openstack import nova_views as views
from tests.sandbox.openstack.common import OpenStackService, last_arg, next_href, parse_limit, webob_html_error
from tests.sandbox.openstack.compute import AVAILABILITY_ZONE, MAX_TAGS, Compute, Server
from tests.sandbox.openstack.nova_schema import (
    MAX_VERSION,
    MIN_VERSION,
    Version,
    requested_version,
    validate,
    validate_create,
    validate_tag,
    version_string,
)

if t.TYPE_CHECKING:
    from tests.sandbox.openstack.identity import Identity
    from tests.sandbox.world import World

_FAULT_NAMES = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    429: "overLimit",
    501: "notImplemented",
    503: "serviceUnavailable",
}
_STATUSES = frozenset({"ACTIVE", "BUILD", "DELETED", "ERROR", "SHUTOFF"})
_KNOWN_STATUSES = _STATUSES | {
    "HARD_REBOOT", "MIGRATING", "PASSWORD", "PAUSED", "REBOOT", "REBUILD", "RESCUE", "RESIZE", "REVERT_RESIZE",
    "SHELVED", "SHELVED_OFFLOADED", "SOFT_DELETED", "SUSPENDED", "UNKNOWN", "VERIFY_RESIZE",
}  # fmt: skip
# Query parameters Nova accepts on GET /servers (2.75 rejects the others); unlisted ones here are ignored.
_SERVER_QUERY = frozenset({
    "name", "status", "image", "flavor", "ip", "ip6", "changes-since", "changes-before", "reservation_id",
    "tags", "tags-any", "not-tags", "not-tags-any", "limit", "marker", "sort_key", "sort_dir", "all_tenants",
    "deleted", "locked", "description", "availability_zone", "config_drive", "key_name", "created_at", "launched_at",
    "terminated_at", "power_state", "progress", "task_state", "vm_state", "uuid", "user_id", "project_id",
    "tenant_id", "access_ip_v4", "access_ip_v6", "auto_disk_config", "display_name", "display_description",
    "host", "hostname", "node", "kernel_id", "ramdisk_id", "launch_index", "root_device_name", "soft_deleted",
    "locked_by", "pinned_availability_zone", "fields",
})  # fmt: skip
_MUTABLE_STATES = ("ACTIVE", "SHUTOFF")
_UNEXPECTED = (
    "Unexpected API Error. Please contact the administrator\n<class 'oslo_messaging.exceptions.MessagingTimeout'>"
)


def _version_doc(base: str) -> dict[str, t.Any]:
    return {
        "id": "v2.1",
        "status": "CURRENT",
        "version": version_string(MAX_VERSION),
        "min_version": version_string(MIN_VERSION),
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": f"{base}/v2.1/"}],
    }


def _tag_set(req: Request, name: str) -> set[str] | None:
    value = last_arg(req, name)
    return None if value is None else {v for v in value.split(",") if v}


class NovaService(OpenStackService):
    name = "nova"
    public_routes = frozenset({("GET", "/"), ("GET", "/v2.1")})

    def __init__(self, world: World, identity: Identity, compute: Compute) -> None:
        super().__init__(world, identity)
        self.compute = compute
        r = self.router
        r.add("GET", "/", self.versions)
        r.add("GET", "/v2.1", self.version)
        r.add("GET", "/servers", self.list_servers)
        r.add("GET", "/servers/detail", self.list_servers_detail)
        r.add("POST", "/servers", self.create_server)
        r.add("GET", "/servers/{server_id}", self.show_server)
        r.add("PUT", "/servers/{server_id}", self.update_server)
        r.add("DELETE", "/servers/{server_id}", self.delete_server)
        r.add("POST", "/servers/{server_id}/action", self.server_action)
        r.add("GET", "/servers/{server_id}/os-security-groups", self.server_security_groups)
        r.add("GET", "/servers/{server_id}/tags", self.list_tags)
        r.add("PUT", "/servers/{server_id}/tags", self.replace_tags)
        r.add("DELETE", "/servers/{server_id}/tags", self.delete_tags)
        r.add("GET", "/servers/{server_id}/tags/{tag}", self.check_tag)
        r.add("PUT", "/servers/{server_id}/tags/{tag}", self.add_tag)
        r.add("DELETE", "/servers/{server_id}/tags/{tag}", self.delete_tag)
        r.add("GET", "/servers/{server_id}/metadata", self.list_metadata)
        r.add("POST", "/servers/{server_id}/metadata", self.update_metadata)
        r.add("PUT", "/servers/{server_id}/metadata", self.replace_metadata)
        r.add("GET", "/servers/{server_id}/metadata/{key}", self.show_metadata_item)
        r.add("PUT", "/servers/{server_id}/metadata/{key}", self.set_metadata_item)
        r.add("DELETE", "/servers/{server_id}/metadata/{key}", self.delete_metadata_item)
        r.add("GET", "/flavors", self.list_flavors)
        r.add("GET", "/flavors/detail", self.list_flavors_detail)
        r.add("GET", "/flavors/{flavor_id}", self.show_flavor)
        r.add("GET", "/flavors/{flavor_id}/os-extra_specs", self.flavor_extra_specs)
        r.add("GET", "/os-keypairs", self.list_keypairs)
        r.add("POST", "/os-keypairs", self.create_keypair)
        r.add("GET", "/os-keypairs/{name}", self.show_keypair)
        r.add("DELETE", "/os-keypairs/{name}", self.delete_keypair)
        r.add("GET", "/limits", self.limits)
        r.add("GET", "/os-quota-sets/{project_id}", self.quota_set)
        r.add("GET", "/os-quota-sets/{project_id}/detail", self.quota_set_detail)
        r.add("GET", "/os-quota-sets/{project_id}/defaults", self.quota_set)
        r.add("GET", "/os-availability-zone", self.availability_zones)
        r.add("GET", "/extensions", self.extensions)

    # Hooks -----------------------------------------------------------------------
    def error_response(self, req: Request, status: int, message: str) -> Response:
        if status == 404 and req.route == "<unmatched>":
            return webob_html_error(404, "The resource could not be found.")  # no route: webob's page
        if status >= 500 and message == "injected fault":
            message = _UNEXPECTED
        return Response(status, {_FAULT_NAMES.get(status, "computeFault"): {"code": status, "message": message}})

    def strip_prefix(self, path: str) -> str:
        # Routes are named as in the compute api-ref: relative to the endpoint (…/v2.1).
        if path in ("/v2.1", "/v2.1/") or path == "/":
            return path.rstrip("/") or "/"
        if path.startswith("/v2.1/"):
            return path[len("/v2.1") :]
        return "/unversioned" + path  # matches no route: 404 as on Nova

    def before(self, req: Request) -> None:
        super().before(req)
        if req.path.startswith("/v2.1/"):
            requested_version(req)  # 400 / 406 before the handler runs

    def after(self, req: Request, resp: Response) -> None:
        super().after(req, resp)
        if not req.path.startswith("/v2.1"):
            return
        try:
            version = version_string(requested_version(req))
        except HttpError:
            return
        resp.headers["OpenStack-API-Version"] = f"compute {version}"
        resp.headers["X-OpenStack-Nova-API-Version"] = version
        resp.headers["Vary"] = "OpenStack-API-Version, X-OpenStack-Nova-API-Version"

    @staticmethod
    def _require(req: Request, minimum: Version) -> Version:
        version = requested_version(req)
        if version < minimum:
            raise HttpError(404, "The resource could not be found.")
        return version

    def _user_id(self, req: Request) -> str:
        token = self.identity.validate(req.header("x-auth-token") or "")
        return token.user_id if token else ""

    def _admin(self, req: Request) -> bool:
        """Whether the caller has the admin role (Nova shows it OS-EXT-SRV-ATTR:* and lets it reset states)."""
        with self.world.lock:
            token = self.identity.validate(req.header("x-auth-token") or "")
        return token is not None and token.admin

    # Versions --------------------------------------------------------------------
    def versions(self, req: Request) -> Response:
        legacy = {
            "id": "v2.0",
            "status": "SUPPORTED",
            "version": "",
            "min_version": "",
            "updated": "2011-01-21T11:33:21Z",
            "links": [{"rel": "self", "href": f"{req.base_url}/v2/"}],
        }
        return Response(200, {"versions": [legacy, _version_doc(req.base_url)]})

    def version(self, req: Request) -> Response:
        doc = _version_doc(req.base_url)
        doc["links"].append({"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"})
        doc["media-types"] = [
            {"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}
        ]
        return Response(200, {"version": doc})

    # Servers ---------------------------------------------------------------------
    def _server_filter(self, req: Request, version: Version) -> t.Callable[[Server], bool]:
        if version >= (2, 75):
            unknown = sorted(set(req.query) - _SERVER_QUERY)
            if unknown:
                verb = "does not match" if len(unknown) == 1 else "do not match"
                raise HttpError(400, f"{', '.join(repr(u) for u in unknown)} {verb} any of the regexes: '^_'")
        checks: list[t.Callable[[Server], bool]] = []
        name = last_arg(req, "name")
        if name is not None:
            try:
                pattern = re.compile(name)
            except re.error:
                pattern = re.compile(re.escape(name))
            checks.append(lambda s: pattern.search(s.name) is not None)
        statuses = {s.upper() for v in req.query.get("status", []) for s in v.split(",")}
        if statuses:
            if not statuses & _KNOWN_STATUSES:
                return lambda s: False  # Nova answers an unknown status with an empty list
            checks.append(lambda s: s.status in statuses)
        fields: dict[str, t.Callable[[Server], str | None]] = {
            "flavor": lambda s: s.flavor.id,
            "image": lambda s: s.image_id,
            "key_name": lambda s: s.key_name,
        }
        for arg, field in fields.items():
            wanted = last_arg(req, arg)
            if wanted is not None:
                checks.append(lambda s, f=field, w=wanted: f(s) == w)  # type: ignore[misc]
        all_tags, any_tags = _tag_set(req, "tags"), _tag_set(req, "tags-any")
        not_tags, not_any = _tag_set(req, "not-tags"), _tag_set(req, "not-tags-any")
        if all_tags:
            checks.append(lambda s: all_tags.issubset(s.tags))
        if any_tags:
            checks.append(lambda s: not any_tags.isdisjoint(s.tags))
        if not_tags:
            checks.append(lambda s: not not_tags.issubset(s.tags))
        if not_any:
            checks.append(lambda s: not_any.isdisjoint(s.tags))
        return lambda s: all(check(s) for check in checks)

    def _list(self, req: Request, detail: bool) -> Response:
        version = requested_version(req)
        match = self._server_filter(req, version)
        limit = parse_limit(req, int(self.world.config["openstack.max_limit"]), lambda m: HttpError(400, m))
        admin = self._admin(req)
        with self.world.lock:
            page = self.compute.list_servers(match, last_arg(req, "marker"), limit)
            items = [
                views.server_detail(s, version, req.base_url, admin) if detail else views.server_basic(s, req.base_url)
                for s in page
            ]
        body: dict[str, t.Any] = {"servers": items}
        if page and len(page) == limit:
            path = "/v2.1/servers/detail" if detail else "/v2.1/servers"
            body["servers_links"] = [{"rel": "next", "href": next_href(req, path, page[-1].id)}]
        return Response(200, body)

    def list_servers(self, req: Request) -> Response:
        return self._list(req, detail=False)

    def list_servers_detail(self, req: Request) -> Response:
        return self._list(req, detail=True)

    def create_server(self, req: Request) -> Response:
        version = requested_version(req)
        body = validate_create(req.json(), version)
        with self.world.lock:
            server = self.compute.create(body, self._user_id(req))
            created = views.server_created(server, req.base_url)
        return Response(202, {"server": created}, {"Location": f"{req.base_url}/v2.1/servers/{server.id}"})

    def show_server(self, req: Request) -> Response:
        version = requested_version(req)
        admin = self._admin(req)
        with self.world.lock:
            server = self.compute.server(req.params["server_id"])
            return Response(200, {"server": views.server_detail(server, version, req.base_url, admin)})

    def update_server(self, req: Request) -> Response:
        version = requested_version(req)
        changes = validate("update", req.json())["server"]
        with self.world.lock:
            server = self.compute.server(req.params["server_id"])
            if "name" in changes:
                server.name = changes["name"]
            if "description" in changes:
                server.description = changes["description"]
            server.updated = self.world.now()
            return Response(200, {"server": views.server_detail(server, version, req.base_url, self._admin(req))})

    def delete_server(self, req: Request) -> Response:
        with self.world.lock:
            self.compute.delete(self.compute.server(req.params["server_id"]))
        return Response(204)

    def server_action(self, req: Request) -> Response:
        body = req.json()
        action = next(iter(body), None) if isinstance(body, dict) and len(body) == 1 else None
        admin = self._admin(req)
        with self.world.lock:
            server = self.compute.server(req.params["server_id"])
            if action == "os-resetState":
                if not admin:
                    raise HttpError(
                        403, "Policy doesn't allow os_compute_api:os-admin-actions:reset_state to be performed."
                    )
                argument = body["os-resetState"]
                state = argument.get("state") if isinstance(argument, dict) else None
                if state not in ("error", "active"):
                    raise HttpError(
                        400,
                        f"Invalid input for field/attribute state. Value: {state}. {state!r} is not one of ['active', 'error']",
                    )
                self.compute.reset_state(server, state)
                return Response(202)
            if server.task_state == "deleting" and action in ("os-stop", "os-start"):
                verb = action[3:]
                raise HttpError(409, f"Cannot '{verb}' instance {server.id} while it is in task_state deleting")
            if action == "os-stop":
                if server.status != "ACTIVE":
                    raise HttpError(
                        409, f"Cannot 'stop' instance {server.id} while it is in vm_state {server.vm_state}"
                    )
                self.compute.power_off(server.id)
            elif action == "os-start":
                if server.status != "SHUTOFF":
                    raise HttpError(
                        409, f"Cannot 'start' instance {server.id} while it is in vm_state {server.vm_state}"
                    )
                self.compute.power_on(server.id)
            else:
                raise HttpError(400, f"There is no such action: {action}")
        return Response(202)

    def server_security_groups(self, req: Request) -> Response:
        with self.world.lock:
            server = self.compute.server(req.params["server_id"])
            groups = [g for name in server.security_groups for g in self.compute.networks.security_groups_named(name)]
            body = [
                {
                    "id": g["id"],
                    "name": g["name"],
                    "description": g["description"],
                    "tenant_id": g["project_id"],
                    "rules": [],
                }
                for g in groups
            ]
        return Response(200, {"security_groups": body})

    # Server tags (2.26) ------------------------------------------------------------
    def _mutable(self, req: Request, action: str) -> Server:
        server = self.compute.server(req.params["server_id"])
        if server.status not in _MUTABLE_STATES:
            raise HttpError(409, f"Cannot '{action}' instance {server.id} while it is in vm_state {server.vm_state}")
        return server

    def list_tags(self, req: Request) -> Response:
        self._require(req, (2, 26))
        with self.world.lock:
            return Response(200, {"tags": list(self.compute.server(req.params["server_id"]).tags)})

    def replace_tags(self, req: Request) -> Response:
        self._require(req, (2, 26))
        tags = validate("tags", req.json())["tags"]
        with self.world.lock:
            server = self._mutable(req, "update tags")
            server.tags = list(dict.fromkeys(tags))
            return Response(200, {"tags": list(server.tags)})

    def delete_tags(self, req: Request) -> Response:
        self._require(req, (2, 26))
        with self.world.lock:
            self._mutable(req, "delete tags").tags = []
        return Response(204)

    def check_tag(self, req: Request) -> Response:
        self._require(req, (2, 26))
        with self.world.lock:
            server = self.compute.server(req.params["server_id"])
            if req.params["tag"] not in server.tags:
                raise HttpError(404, f"Tag {req.params['tag']} could not be found.")
        return Response(204)

    def add_tag(self, req: Request) -> Response:
        self._require(req, (2, 26))
        tag = validate_tag(req.params["tag"])
        with self.world.lock:
            server = self._mutable(req, "update tag")
            if tag in server.tags:
                return Response(204)
            if len(server.tags) >= MAX_TAGS:
                raise HttpError(400, f"The number of tags exceeded the per-server limit {MAX_TAGS}")
            server.tags.append(tag)
        return Response(201, None, {"Location": f"{req.base_url}/v2.1/servers/{server.id}/tags/{tag}"})

    def delete_tag(self, req: Request) -> Response:
        self._require(req, (2, 26))
        with self.world.lock:
            server = self._mutable(req, "delete tag")
            if req.params["tag"] not in server.tags:
                raise HttpError(404, f"Tag {req.params['tag']} could not be found.")
            server.tags.remove(req.params["tag"])
        return Response(204)

    # Server metadata ---------------------------------------------------------------
    def _check_metadata_quota(self, metadata: dict[str, str]) -> None:
        allowed = self.compute.quota("metadata_items")
        if 0 <= allowed < len(metadata):
            raise HttpError(403, f"Maximum number of metadata items exceeds {allowed}")

    def list_metadata(self, req: Request) -> Response:
        with self.world.lock:
            return Response(200, {"metadata": dict(self.compute.server(req.params["server_id"]).metadata)})

    def update_metadata(self, req: Request) -> Response:
        changes = validate("metadata", req.json())["metadata"]
        with self.world.lock:
            server = self._mutable(req, "update_metadata")
            merged = {**server.metadata, **changes}
            self._check_metadata_quota(merged)
            server.metadata = merged
            return Response(200, {"metadata": dict(merged)})

    def replace_metadata(self, req: Request) -> Response:
        metadata = validate("metadata", req.json())["metadata"]
        with self.world.lock:
            server = self._mutable(req, "update_metadata")
            self._check_metadata_quota(metadata)
            server.metadata = dict(metadata)
            return Response(200, {"metadata": dict(metadata)})

    def show_metadata_item(self, req: Request) -> Response:
        key = req.params["key"]
        with self.world.lock:
            metadata = self.compute.server(req.params["server_id"]).metadata
            if key not in metadata:
                raise HttpError(404, "Metadata item was not found")
            return Response(200, {"meta": {key: metadata[key]}})

    def set_metadata_item(self, req: Request) -> Response:
        meta = validate("meta", req.json())["meta"]
        key = req.params["key"]
        if key not in meta:
            raise HttpError(400, "Request body and URI mismatch")
        with self.world.lock:
            server = self._mutable(req, "update_metadata")
            merged = {**server.metadata, key: meta[key]}
            self._check_metadata_quota(merged)
            server.metadata = merged
        return Response(200, {"meta": {key: meta[key]}})

    def delete_metadata_item(self, req: Request) -> Response:
        key = req.params["key"]
        with self.world.lock:
            server = self._mutable(req, "delete_metadata")
            if key not in server.metadata:
                raise HttpError(404, "Metadata item was not found")
            del server.metadata[key]
        return Response(204)

    # Flavors -----------------------------------------------------------------------
    def _flavors(self, req: Request, detail: bool) -> Response:
        version = requested_version(req)
        limit = parse_limit(req, int(self.world.config["openstack.max_limit"]), lambda m: HttpError(400, m))
        flavors = sorted(self.compute.flavors.values(), key=lambda f: f.id)
        marker = last_arg(req, "marker")
        if marker is not None:
            ids = [f.id for f in flavors]
            if marker not in ids:
                raise HttpError(400, f"marker [{marker}] not found")
            flavors = flavors[ids.index(marker) + 1 :]
        min_ram, min_disk = int(last_arg(req, "minRam") or 0), int(last_arg(req, "minDisk") or 0)
        page = [f for f in flavors if f.ram >= min_ram and f.disk >= min_disk][:limit]
        view = views.flavor_detail if detail else views.flavor_basic
        body: dict[str, t.Any] = {"flavors": [view(f, version, req.base_url) for f in page]}
        if page and len(page) == limit:
            path = "/v2.1/flavors/detail" if detail else "/v2.1/flavors"
            body["flavors_links"] = [{"rel": "next", "href": next_href(req, path, page[-1].id)}]
        return Response(200, body)

    def list_flavors(self, req: Request) -> Response:
        return self._flavors(req, detail=False)

    def list_flavors_detail(self, req: Request) -> Response:
        return self._flavors(req, detail=True)

    def _flavor(self, flavor_id: str) -> t.Any:
        flavor = self.compute.flavors.get(flavor_id)
        if flavor is None:
            raise HttpError(404, f"Flavor {flavor_id} could not be found.")
        return flavor

    def show_flavor(self, req: Request) -> Response:
        flavor = self._flavor(req.params["flavor_id"])
        return Response(200, {"flavor": views.flavor_detail(flavor, requested_version(req), req.base_url)})

    def flavor_extra_specs(self, req: Request) -> Response:
        self._flavor(req.params["flavor_id"])
        return Response(200, {"extra_specs": {}})

    # Keypairs ----------------------------------------------------------------------
    @staticmethod
    def _keypair_view(keypair: dict[str, t.Any], version: Version) -> dict[str, t.Any]:
        keys = ("name", "public_key", "fingerprint") + (("type",) if version >= (2, 2) else ())
        return {k: keypair[k] for k in keys}

    def list_keypairs(self, req: Request) -> Response:
        version = requested_version(req)
        with self.world.lock:
            items = [{"keypair": self._keypair_view(k, version)} for k in self.compute.keypairs.values()]
        return Response(200, {"keypairs": items})

    def show_keypair(self, req: Request) -> Response:
        with self.world.lock:
            keypair = self.compute.keypairs.get(req.params["name"])
            if keypair is None:
                raise HttpError(404, f"Keypair {req.params['name']} not found for user {self._user_id(req)}")
            return Response(200, {"keypair": dict(keypair)})

    def create_keypair(self, req: Request) -> Response:
        version = requested_version(req)
        body = req.json()
        data = body.get("keypair") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise HttpError(
                400, f"Invalid input for field/attribute keypair. Value: {body}. 'keypair' is a required property"
            )
        name = data.get("name")
        pattern = r"^[a-zA-Z0-9 @._-]+$" if version >= (2, 92) else r"^[a-zA-Z0-9 _-]+$"
        if not isinstance(name, str) or not re.match(pattern, name) or len(name) > 255:
            raise HttpError(
                400, f"Invalid input for field/attribute name. Value: {name}. {name!r} does not match '{pattern}'"
            )
        public_key = data.get("public_key")
        if public_key is None and version >= (2, 92):
            raise HttpError(
                400, f"Invalid input for field/attribute keypair. Value: {data}. 'public_key' is a required property"
            )
        private_key = None
        if public_key is None:
            public_key, private_key = _generate_ssh_key()
        with self.world.lock:
            keypair = self.compute.add_keypair(name, str(public_key), str(data.get("type", "ssh")), self._user_id(req))
            view = {**self._keypair_view(keypair, version), "user_id": keypair["user_id"]}
        if private_key is not None:
            view["private_key"] = private_key
        return Response(201 if version >= (2, 2) else 200, {"keypair": view})

    def delete_keypair(self, req: Request) -> Response:
        version = requested_version(req)
        with self.world.lock:
            self.compute.delete_keypair(req.params["name"])
        return Response(204 if version >= (2, 2) else 202)

    # Limits and quotas ---------------------------------------------------------------
    def limits(self, req: Request) -> Response:
        version = requested_version(req)
        with self.world.lock:
            used = self.compute.usage()
            q = self.compute.quota
            absolute: dict[str, int] = {
                "maxServerMeta": q("metadata_items"),
                "maxImageMeta": 128,
                "maxTotalKeypairs": q("key_pairs"),
                "maxServerGroups": 10,
                "maxServerGroupMembers": 10,
                "maxTotalCores": q("cores"),
                "maxTotalInstances": q("instances"),
                "maxTotalRAMSize": q("ram"),
                "totalCoresUsed": used["cores"],
                "totalInstancesUsed": used["instances"],
                "totalRAMUsed": used["ram"],
                "totalServerGroupsUsed": 0,
            }
        if version < (2, 57):
            absolute.update(maxPersonality=5, maxPersonalitySize=10240)
        if version < (2, 36):
            absolute.update(maxSecurityGroups=10, maxSecurityGroupRules=20, maxTotalFloatingIps=10,
                            totalFloatingIpsUsed=0, totalSecurityGroupsUsed=1)  # fmt: skip
        return Response(200, {"limits": {"rate": [], "absolute": absolute}})

    def _quota_values(self, req: Request) -> dict[str, int]:
        if req.params["project_id"] != self.identity.creds.project_id:
            raise HttpError(403, "Policy doesn't allow os_compute_api:os-quota-sets:show to be performed.")
        version = requested_version(req)
        q = self.compute.quota
        values = {"cores": q("cores"), "instances": q("instances"), "ram": q("ram"), "key_pairs": q("key_pairs"),
                  "metadata_items": q("metadata_items"), "server_groups": 10, "server_group_members": 10}  # fmt: skip
        if version < (2, 57):
            values.update(injected_file_content_bytes=10240, injected_file_path_bytes=255, injected_files=5)
        if version < (2, 36):
            values.update(fixed_ips=-1, floating_ips=10, security_group_rules=20, security_groups=10)
        return values

    def quota_set(self, req: Request) -> Response:
        with self.world.lock:
            values = self._quota_values(req)
        return Response(200, {"quota_set": {"id": req.params["project_id"], **values}})

    def quota_set_detail(self, req: Request) -> Response:
        with self.world.lock:
            values = self._quota_values(req)
            used = {**self.compute.usage(), "key_pairs": len(self.compute.keypairs)}
        detail = {k: {"in_use": used.get(k, 0), "limit": v, "reserved": 0} for k, v in values.items()}
        return Response(200, {"quota_set": {"id": req.params["project_id"], **detail}})

    def availability_zones(self, req: Request) -> Response:
        zone = {"zoneName": AVAILABILITY_ZONE, "zoneState": {"available": True}, "hosts": None}
        return Response(200, {"availabilityZoneInfo": [zone]})

    def extensions(self, req: Request) -> Response:
        names = (("os-availability-zone", "AvailabilityZone"), ("os-keypairs", "Keypairs"), ("os-server-tags", "ServerTags"),
                 ("os-quota-sets", "Quotas"), ("os-security-groups", "SecurityGroups"))  # fmt: skip
        items = [{"alias": a, "name": n, "namespace": "http://docs.openstack.org/compute/ext/fake_xml", "description": n,
                  "links": [], "updated": "2014-12-03T00:00:00Z"} for a, n in names]  # fmt: skip
        return Response(200, {"extensions": items})


def _generate_ssh_key() -> tuple[str, str]:
    """A new RSA key pair as Nova makes one for microversions before 2.92."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return public.decode() + " Generated-by-Nova", private.decode()
