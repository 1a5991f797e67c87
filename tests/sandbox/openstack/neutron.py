"""Neutron v2.0: networks, subnets, ports, security groups and rules (what create_server needs)."""

from __future__ import annotations

import dataclasses
import ipaddress
import typing as t

from tests.sandbox.httpserver import HttpError, Request, Response
from tests.sandbox.openstack.common import OpenStackService, isotime, last_arg, new_id, next_href, parse_limit

if t.TYPE_CHECKING:
    from tests.sandbox.openstack.identity import Identity
    from tests.sandbox.world import World

DEFAULT_NETWORK = "runners-net"
DEFAULT_SUBNET_CIDR = "10.20.0.0/16"
DEFAULT_SECURITY_GROUPS = ("default", "runners-no-ingress")
_PAGING_ARGS = frozenset({"limit", "marker", "fields", "sort_key", "sort_dir", "page_reverse"})
_EXTENSIONS = (
    ("security-group", "security-group", "The security groups extension."),
    ("port-security", "Port Security", "Provides port security"),
    ("pagination", "Pagination support", "Extension that indicates that pagination is enabled."),
    ("sorting", "Sorting support", "Extension that indicates that sorting is enabled."),
    ("filter-validation", "Filter parameters validation", "Provides validation on filter parameters."),
    ("standard-attr-description", "standard-attr-description", "Extension to add descriptions to standard attributes"),
    (
        "standard-attr-timestamp",
        "Resource timestamps",
        "Adds created_at and updated_at fields to all Neutron resources.",
    ),
    ("standard-attr-revisions", "Resource revision numbers", "This extension will display the revision number."),
    ("standard-attr-tag", "Tag support for resources with standard attribute", "Enables to set tag on resources."),
)


@dataclasses.dataclass(frozen=True)
class Kind:
    collection: str  # URL segment and list key, e.g. "security-groups"
    key: str  # singular body key, e.g. "security_group"
    not_found: str  # NeutronError type
    message: str  # with {id}
    attrs: frozenset[str]  # filterable attributes

    @property
    def list_key(self) -> str:
        return self.collection.replace("-", "_")


def _attrs(*names: str) -> frozenset[str]:
    common = (
        "id",
        "name",
        "tenant_id",
        "project_id",
        "description",
        "tags",
        "created_at",
        "updated_at",
        "revision_number",
    )
    return frozenset(common + names)


KINDS = {
    k.collection: k
    for k in (
        Kind("networks", "network", "NetworkNotFound", "Network {id} could not be found.",
             _attrs("admin_state_up", "status", "shared", "router:external", "mtu", "subnets", "port_security_enabled",
                    "availability_zones", "is_default")),
        Kind("subnets", "subnet", "SubnetNotFound", "Subnet {id} could not be found.",
             _attrs("network_id", "cidr", "ip_version", "gateway_ip", "enable_dhcp", "subnetpool_id")),
        Kind("ports", "port", "PortNotFound", "Port {id} could not be found.",
             _attrs("network_id", "device_id", "device_owner", "mac_address", "status", "admin_state_up",
                    "fixed_ips", "security_groups", "binding:vnic_type", "port_security_enabled")),
        Kind("security-groups", "security_group", "SecurityGroupNotFound", "Security group {id} does not exist",
             _attrs("stateful", "shared")),
        Kind("security-group-rules", "security_group_rule", "SecurityGroupRuleNotFound",
             "Security group rule {id} does not exist",
             _attrs("security_group_id", "direction", "ethertype", "protocol", "port_range_min", "port_range_max",
                    "remote_ip_prefix", "remote_group_id")),
        Kind("routers", "router", "RouterNotFound", "Router {id} could not be found.",
             _attrs("status", "admin_state_up", "external_gateway_info")),
        Kind("floatingips", "floatingip", "FloatingIPNotFound", "Floating IP {id} could not be found",
             _attrs("floating_ip_address", "floating_network_id", "port_id", "fixed_ip_address", "router_id", "status")),
    )
}  # fmt: skip


class NeutronError(HttpError):
    def __init__(self, status: int, type_: str, message: str) -> None:
        super().__init__(status, message, body={"NeutronError": {"type": type_, "message": message, "detail": ""}})


class Networks:
    """Neutron's records (hold world.lock); Nova uses it to resolve networks and groups and to plug ports."""

    def __init__(self, world: World, project_id: str) -> None:
        self.world = world
        self.project_id = project_id
        self.records: dict[str, dict[str, dict[str, t.Any]]] = {c: {} for c in KINDS}
        self.ports_by_device: dict[str, list[str]] = {}
        net = self._add("networks", {
            "name": DEFAULT_NETWORK, "admin_state_up": True, "status": "ACTIVE", "shared": False,
            "router:external": False, "mtu": 1450, "subnets": [], "port_security_enabled": True,
            "availability_zone_hints": [], "availability_zones": ["nova"], "ipv4_address_scope": None,
            "ipv6_address_scope": None, "l2_adjacency": True, "is_default": False, "dns_domain": "",
        })  # fmt: skip
        cidr = ipaddress.ip_network(DEFAULT_SUBNET_CIDR)
        subnet = self._add("subnets", {
            "name": "runners-subnet", "network_id": net["id"], "ip_version": 4, "cidr": str(cidr),
            "gateway_ip": str(cidr[1]), "allocation_pools": [{"start": str(cidr[2]), "end": str(cidr[-2])}],
            "dns_nameservers": [], "host_routes": [], "enable_dhcp": True, "ipv6_ra_mode": None,
            "ipv6_address_mode": None, "subnetpool_id": None, "service_types": [],
        })  # fmt: skip
        net["subnets"].append(subnet["id"])
        self._pool = (int(cidr[2]), int(cidr[-2]))
        self._next_ip = self._pool[0]
        self._free_ips: list[int] = []
        self._next_mac = 1
        for name in DEFAULT_SECURITY_GROUPS:
            self.create_security_group(
                name, "Default security group" if name == "default" else "Runner VMs: no inbound"
            )

    # Records ---------------------------------------------------------------------
    def _add(self, collection: str, fields: dict[str, t.Any]) -> dict[str, t.Any]:
        now = isotime(self.world.now())
        record = {"id": new_id(), "tenant_id": self.project_id, "project_id": self.project_id, "description": "",
                  "tags": [], "created_at": now, "updated_at": now, "revision_number": 0, **fields}  # fmt: skip
        self.records[collection][record["id"]] = record
        return record

    def get(self, collection: str, record_id: str) -> dict[str, t.Any]:
        record = self.records[collection].get(record_id)
        if record is None:
            kind = KINDS[collection]
            raise NeutronError(404, kind.not_found, kind.message.format(id=record_id))
        return record

    def networks_named(self, name_or_id: str) -> list[dict[str, t.Any]]:
        nets = self.records["networks"]
        return [nets[name_or_id]] if name_or_id in nets else [n for n in nets.values() if n["name"] == name_or_id]

    def security_groups_named(self, name_or_id: str) -> list[dict[str, t.Any]]:
        groups = self.records["security-groups"]
        if name_or_id in groups:
            return [groups[name_or_id]]
        return [g for g in groups.values() if g["name"] == name_or_id]

    # Security groups -------------------------------------------------------------
    def create_security_group(self, name: str, description: str = "") -> dict[str, t.Any]:
        group = self._add("security-groups", {"name": name, "description": description, "stateful": True,
                                              "shared": False, "security_group_rules": []})  # fmt: skip
        for ethertype in ("IPv4", "IPv6"):
            self.create_rule({"security_group_id": group["id"], "direction": "egress", "ethertype": ethertype})
            if name == "default":
                self.create_rule({"security_group_id": group["id"], "direction": "ingress", "ethertype": ethertype,
                                  "remote_group_id": group["id"]})  # fmt: skip
        return group

    def create_rule(self, fields: dict[str, t.Any]) -> dict[str, t.Any]:
        group = self.get("security-groups", str(fields.get("security_group_id")))
        rule = {"direction": fields.get("direction"), "ethertype": fields.get("ethertype", "IPv4"),
                "protocol": fields.get("protocol"), "port_range_min": fields.get("port_range_min"),
                "port_range_max": fields.get("port_range_max"), "remote_ip_prefix": fields.get("remote_ip_prefix"),
                "remote_group_id": fields.get("remote_group_id"), "remote_address_group_id": None,
                "normalized_cidr": fields.get("remote_ip_prefix"), "security_group_id": group["id"],
                "belongs_to_default_sg": group["name"] == "default"}  # fmt: skip
        if rule["direction"] not in ("ingress", "egress"):
            raise NeutronError(
                400,
                "HTTPBadRequest",
                f"Invalid input for direction. Reason: {rule['direction']!r} is not in ['ingress', 'egress'].",
            )
        if rule["ethertype"] not in ("IPv4", "IPv6"):
            raise NeutronError(
                400,
                "HTTPBadRequest",
                f"Invalid input for ethertype. Reason: {rule['ethertype']!r} is not in ['IPv4', 'IPv6'].",
            )
        same = (
            "direction",
            "ethertype",
            "protocol",
            "port_range_min",
            "port_range_max",
            "remote_ip_prefix",
            "remote_group_id",
        )
        for existing in group["security_group_rules"]:
            if all(existing[k] == rule[k] for k in same):
                raise NeutronError(
                    409, "SecurityGroupRuleExists", f"Security group rule already exists. Rule id is {existing['id']}."
                )
        record = self._add("security-group-rules", {**rule, "description": fields.get("description") or ""})
        group["security_group_rules"].append(record)
        return record

    def delete_rule(self, rule_id: str) -> None:
        rule = self.get("security-group-rules", rule_id)
        group = self.records["security-groups"][rule["security_group_id"]]
        group["security_group_rules"] = [r for r in group["security_group_rules"] if r["id"] != rule_id]
        del self.records["security-group-rules"][rule_id]

    def delete_security_group(self, group_id: str) -> None:
        group = self.get("security-groups", group_id)
        if group["name"] == "default":
            raise NeutronError(
                409, "SecurityGroupCannotRemoveDefault", "Insufficient rights for removing default security group."
            )
        if any(group_id in p["security_groups"] for p in self.records["ports"].values()):
            raise NeutronError(409, "SecurityGroupInUse", f"Security Group {group_id} in use.")
        for rule in group["security_group_rules"]:
            self.records["security-group-rules"].pop(rule["id"], None)
        del self.records["security-groups"][group_id]

    # Ports -----------------------------------------------------------------------
    def _allocate_ip(self, network: dict[str, t.Any]) -> list[dict[str, str]]:
        if not network["subnets"]:
            return []
        if self._free_ips:
            ip = self._free_ips.pop()
        elif self._next_ip <= self._pool[1]:
            ip = self._next_ip
            self._next_ip += 1
        else:
            raise NeutronError(
                409, "IpAddressGenerationFailure", f"No more IP addresses available on network {network['id']}."
            )
        return [{"subnet_id": network["subnets"][0], "ip_address": str(ipaddress.IPv4Address(ip))}]

    def create_port(self, fields: dict[str, t.Any]) -> dict[str, t.Any]:
        network = self.get("networks", str(fields.get("network_id")))
        groups = fields.get("security_groups")
        if groups is None:
            groups = [self.security_groups_named("default")[0]["id"]]
        for group_id in groups:
            self.get("security-groups", group_id)
        mac = (
            f"fa:16:3e:{(self._next_mac >> 16) & 255:02x}:{(self._next_mac >> 8) & 255:02x}:{self._next_mac & 255:02x}"
        )
        self._next_mac += 1
        port = self._add("ports", {
            "name": fields.get("name", ""), "network_id": network["id"], "mac_address": mac, "admin_state_up": True,
            "status": "DOWN", "device_id": fields.get("device_id", ""), "device_owner": fields.get("device_owner", ""),
            "fixed_ips": self._allocate_ip(network), "allowed_address_pairs": [], "extra_dhcp_opts": [],
            "security_groups": list(groups), "binding:vnic_type": "normal", "port_security_enabled": True,
            "dns_name": "", "dns_assignment": [],
        })  # fmt: skip
        if port["device_id"]:
            self.ports_by_device.setdefault(port["device_id"], []).append(port["id"])
        return port

    def delete_port(self, port_id: str) -> None:
        port = self.get("ports", port_id)
        for fixed in port["fixed_ips"]:
            self._free_ips.append(int(ipaddress.IPv4Address(fixed["ip_address"])))
        device = self.ports_by_device.get(port["device_id"])
        if device is not None:
            device.remove(port_id)
            if not device:
                del self.ports_by_device[port["device_id"]]
        del self.records["ports"][port_id]

    def device_ports(self, device_id: str) -> list[dict[str, t.Any]]:
        return [self.records["ports"][p] for p in self.ports_by_device.get(device_id, [])]

    def release_device(self, device_id: str) -> None:
        for port_id in list(self.ports_by_device.get(device_id, [])):
            self.delete_port(port_id)


def _matches(record: dict[str, t.Any], key: str, wanted: list[str]) -> bool:
    value = record.get(key)
    if isinstance(value, bool):
        return any(w.lower() == str(value).lower() for w in wanted)
    if isinstance(value, list):
        return any(w in (str(v) for v in value) for w in wanted)
    return (str(value) if value is not None else "") in wanted


class NeutronService(OpenStackService):
    name = "neutron"
    public_routes = frozenset({("GET", "/"), ("GET", "/v2.0")})

    def __init__(self, world: World, identity: Identity, networks: Networks) -> None:
        super().__init__(world, identity)
        self.net = networks
        r = self.router
        r.add("GET", "/", self.versions)
        r.add("GET", "/v2.0", self.resources)
        r.add("GET", "/v2.0/extensions", self.extensions)
        for collection in KINDS:
            r.add("GET", f"/v2.0/{collection}", self._lister(collection))
            r.add("GET", f"/v2.0/{collection}/{{id}}", self._shower(collection))
        r.add("POST", "/v2.0/ports", self.create_port)
        r.add("DELETE", "/v2.0/ports/{id}", self.delete_port)
        r.add("POST", "/v2.0/security-groups", self.create_security_group)
        r.add("DELETE", "/v2.0/security-groups/{id}", self.delete_security_group)
        r.add("POST", "/v2.0/security-group-rules", self.create_rule)
        r.add("DELETE", "/v2.0/security-group-rules/{id}", self.delete_rule)

    def error_response(self, req: Request, status: int, message: str) -> Response:
        if status == 404 and req.route == "<unmatched>":
            return Response(
                404,
                b"404 Not Found\n\nThe resource could not be found.\n\n   ",
                {"Content-Type": "text/plain; charset=UTF-8"},
            )
        types = {
            400: "HTTPBadRequest",
            403: "HTTPForbidden",
            404: "HTTPNotFound",
            405: "HTTPMethodNotAllowed",
            409: "HTTPConflict",
        }
        if status >= 500 and message == "injected fault":
            message = "Request Failed: internal server error while processing your request."
        return Response(
            status,
            {"NeutronError": {"type": types.get(status, "HTTPInternalServerError"), "message": message, "detail": ""}},
        )

    # Discovery -------------------------------------------------------------------
    def versions(self, req: Request) -> Response:
        return Response(
            200,
            {
                "versions": [
                    {"status": "CURRENT", "id": "v2.0", "links": [{"href": f"{req.base_url}/v2.0/", "rel": "self"}]}
                ]
            },
        )

    def resources(self, req: Request) -> Response:
        return Response(200, {"resources": [
            {"links": [{"href": f"{req.base_url}/v2.0/{c}", "rel": "self"}], "name": k.key, "collection": k.list_key}
            for c, k in KINDS.items()
        ]})  # fmt: skip

    def extensions(self, req: Request) -> Response:
        updated = "2024-01-01T10:00:00-00:00"
        return Response(200, {"extensions": [
            {"alias": a, "name": n, "description": d, "links": [], "updated": updated} for a, n, d in _EXTENSIONS
        ]})  # fmt: skip

    # Generic list/show -------------------------------------------------------------
    def _lister(self, collection: str) -> t.Callable[[Request], Response]:
        kind = KINDS[collection]

        def handler(req: Request) -> Response:
            filters = {k: v for k, v in req.query.items() if k not in _PAGING_ARGS}
            for key in filters:
                if key not in kind.attrs:
                    raise NeutronError(400, "HTTPBadRequest", f"[{key}] is invalid attribute for filtering")
            limit = (
                parse_limit(req, 10**9, lambda m: NeutronError(400, "HTTPBadRequest", m))
                if last_arg(req, "limit")
                else None
            )
            marker = last_arg(req, "marker")
            fields = req.query.get("fields")
            with self.world.lock:
                records = list(self.net.records[collection].values())
                if "device_id" in filters and collection == "ports":
                    records = [p for d in filters["device_id"] for p in self.net.device_ports(d)]
                if marker is not None:
                    ids = [r["id"] for r in records]
                    if marker not in ids:
                        raise NeutronError(404, kind.not_found, kind.message.format(id=marker))
                    records = records[ids.index(marker) + 1 :]
                matched = [r for r in records if all(_matches(r, k, v) for k, v in filters.items())]
                page = matched if limit is None else matched[:limit]
                items = [{k: v for k, v in r.items() if not fields or k in fields} for r in page]
            body: dict[str, t.Any] = {kind.list_key: items}
            if limit is not None and page and len(page) == limit:
                body[f"{kind.list_key}_links"] = [
                    {"href": next_href(req, f"/v2.0/{collection}", page[-1]["id"]), "rel": "next"}
                ]
            return Response(200, body)

        return handler

    def _shower(self, collection: str) -> t.Callable[[Request], Response]:
        kind = KINDS[collection]

        def handler(req: Request) -> Response:
            fields = req.query.get("fields")
            with self.world.lock:
                record = self.net.get(collection, req.params["id"])
                return Response(200, {kind.key: {k: v for k, v in record.items() if not fields or k in fields}})

        return handler

    # Mutations -------------------------------------------------------------------
    def _body(self, req: Request, key: str) -> dict[str, t.Any]:
        body = req.json()
        if not isinstance(body, dict) or not isinstance(body.get(key), dict):
            raise NeutronError(400, "HTTPBadRequest", f"Resource body required with key '{key}'")
        return t.cast(dict[str, t.Any], body[key])

    def create_port(self, req: Request) -> Response:
        fields = self._body(req, "port")
        if "network_id" not in fields:
            raise NeutronError(
                400, "HTTPBadRequest", "Failed to parse request. Required attribute 'network_id' not specified"
            )
        with self.world.lock:
            return Response(201, {"port": dict(self.net.create_port(fields))})

    def delete_port(self, req: Request) -> Response:
        with self.world.lock:
            self.net.delete_port(req.params["id"])
        return Response(204)

    def create_security_group(self, req: Request) -> Response:
        fields = self._body(req, "security_group")
        name = str(fields.get("name", ""))
        with self.world.lock:
            if name == "default" and self.net.security_groups_named("default"):
                raise NeutronError(409, "SecurityGroupDefaultAlreadyExists", "Default security group already exists.")
            group = self.net.create_security_group(name, str(fields.get("description", "")))
            return Response(201, {"security_group": dict(group)})

    def delete_security_group(self, req: Request) -> Response:
        with self.world.lock:
            self.net.delete_security_group(req.params["id"])
        return Response(204)

    def create_rule(self, req: Request) -> Response:
        fields = self._body(req, "security_group_rule")
        if "security_group_id" not in fields or "direction" not in fields:
            raise NeutronError(
                400, "HTTPBadRequest", "Failed to parse request. Required attribute 'security_group_id' not specified"
            )
        with self.world.lock:
            return Response(201, {"security_group_rule": dict(self.net.create_rule(fields))})

    def delete_rule(self, req: Request) -> Response:
        with self.world.lock:
            self.net.delete_rule(req.params["id"])
        return Response(204)
