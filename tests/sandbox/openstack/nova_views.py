"""Nova's JSON views of servers and flavors, per microversion (nova/api/openstack/compute/views)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import re
import typing as t

from tests.sandbox.openstack.common import isotime
from tests.sandbox.openstack.compute import AVAILABILITY_ZONE, Flavor, Server
from tests.sandbox.openstack.nova_schema import Version

_PROGRESS_STATUSES = ("ACTIVE", "BUILD")
_FAULT_STATUSES = ("ERROR", "DELETED")


def links(base: str, collection: str, item_id: str) -> list[dict[str, str]]:
    return [
        {"rel": "self", "href": f"{base}/v2.1/{collection}/{item_id}"},
        {"rel": "bookmark", "href": f"{base}/{collection}/{item_id}"},
    ]


def _naive_time(ts: float | None) -> str | None:
    # Nova prints launched_at as str() of a naive datetime.
    if ts is None:
        return None
    return (
        datetime.datetime.fromtimestamp(ts, datetime.UTC)
        .replace(tzinfo=None)
        .isoformat(sep="T", timespec="microseconds")
    )


def server_basic(server: Server, base: str) -> dict[str, t.Any]:
    return {"id": server.id, "name": server.name, "links": links(base, "servers", server.id)}


def server_created(server: Server, base: str) -> dict[str, t.Any]:
    body: dict[str, t.Any] = {
        "id": server.id,
        "links": links(base, "servers", server.id),
        "OS-DCF:diskConfig": server.disk_config,
        "adminPass": server.admin_pass,
    }
    if server.security_groups:
        body["security_groups"] = [{"name": name} for name in server.security_groups]
    return body


def _flavor(flavor: Flavor, version: Version, base: str) -> dict[str, t.Any]:
    if version < (2, 47):
        return {"id": flavor.id, "links": [{"rel": "bookmark", "href": f"{base}/flavors/{flavor.id}"}]}
    return {
        "vcpus": flavor.vcpus,
        "ram": flavor.ram,
        "disk": flavor.disk,
        "ephemeral": flavor.ephemeral,
        "swap": flavor.swap,
        "original_name": flavor.name,
        "extra_specs": {},
    }


def _admin_attributes(server: Server, version: Version) -> dict[str, t.Any]:
    """OS-EXT-SRV-ATTR:* (and host_status): Nova shows them to admins only; user_data is the decoded-back base64."""
    host = "compute" if server.on_host else None
    attrs: dict[str, t.Any] = {
        "OS-EXT-SRV-ATTR:host": host,
        "OS-EXT-SRV-ATTR:hypervisor_hostname": "fake-mini" if host else None,
        "OS-EXT-SRV-ATTR:instance_name": f"instance-{server.seq:08x}",
    }
    if version >= (2, 3):
        user_data = base64.b64encode(server.user_data.encode()).decode() if server.user_data is not None else None
        attrs.update(
            {
                "OS-EXT-SRV-ATTR:reservation_id": server.reservation_id,
                "OS-EXT-SRV-ATTR:launch_index": 0,
                "OS-EXT-SRV-ATTR:hostname": re.sub(r"[^a-z0-9-]+", "-", server.name.lower()).strip("-")[:63],
                "OS-EXT-SRV-ATTR:kernel_id": "",
                "OS-EXT-SRV-ATTR:ramdisk_id": "",
                "OS-EXT-SRV-ATTR:root_device_name": "/dev/sda" if host else None,
                "OS-EXT-SRV-ATTR:user_data": user_data,
            }
        )
    if version >= (2, 16):
        attrs["host_status"] = "UP" if host else ""
    return attrs


def server_detail(server: Server, version: Version, base: str, admin: bool = False) -> dict[str, t.Any]:
    scheduled = server.status != "BUILD"
    body: dict[str, t.Any] = {
        "id": server.id,
        "name": server.name,
        "status": server.status,
        "tenant_id": server.project_id,
        "user_id": server.user_id,
        "metadata": dict(server.metadata),
        "hostId": hashlib.sha224(f"{server.project_id}compute-0".encode()).hexdigest() if scheduled else "",
        "image": (
            {"id": server.image_id, "links": [{"rel": "bookmark", "href": f"{base}/images/{server.image_id}"}]}
            | ({"properties": {}} if version >= (2, 98) else {})
            if server.image_id
            else ""
        ),
        "flavor": _flavor(server.flavor, version, base),
        "created": isotime(server.created),
        "updated": isotime(server.updated),
        "addresses": {net: [dict(a) for a in addrs] for net, addrs in server.addresses.items()},
        "accessIPv4": "",
        "accessIPv6": "",
        "links": links(base, "servers", server.id),
        "OS-DCF:diskConfig": server.disk_config,
        "OS-EXT-AZ:availability_zone": AVAILABILITY_ZONE if scheduled else "",
        "config_drive": "True" if server.config_drive else "",
        "key_name": server.key_name,
        "OS-SRV-USG:launched_at": _naive_time(server.launched_at),
        "OS-SRV-USG:terminated_at": None,
        "OS-EXT-STS:task_state": server.task_state,
        "OS-EXT-STS:vm_state": server.vm_state,
        "OS-EXT-STS:power_state": server.power_state,
        "os-extended-volumes:volumes_attached": [],
    }
    if server.status in _FAULT_STATUSES and server.fault:
        body["fault"] = dict(server.fault)
        if admin and server.fault.get("code") == 500:
            # Nova shows admins the traceback of a 500 fault.
            body["fault"]["details"] = (
                f"Traceback (most recent call last):\nnova.exception.NoValidHost: {server.fault['message']}\n"
            )
    if admin:
        body.update(_admin_attributes(server, version))
    if server.status in _PROGRESS_STATUSES:
        body["progress"] = 0
    if server.security_groups:
        body["security_groups"] = [{"name": name} for name in server.security_groups]
    if version >= (2, 9):
        body["locked"] = False
    if version >= (2, 19):
        body["description"] = server.description
    if version >= (2, 26):
        body["tags"] = list(server.tags)
    if version >= (2, 63):
        body["trusted_image_certificates"] = None
    if version >= (2, 71):
        body["server_groups"] = []
    if version >= (2, 73):
        body["locked_reason"] = None
    if version >= (2, 96):
        body["pinned_availability_zone"] = None
    if version >= (2, 100):
        body["scheduler_hints"] = {}
    return body


def flavor_basic(flavor: Flavor, version: Version, base: str) -> dict[str, t.Any]:
    body: dict[str, t.Any] = {"id": flavor.id, "name": flavor.name, "links": links(base, "flavors", flavor.id)}
    if version >= (2, 55):
        body["description"] = flavor.description
    return body


def flavor_detail(flavor: Flavor, version: Version, base: str) -> dict[str, t.Any]:
    body = flavor_basic(flavor, version, base)
    body.update(
        {
            "ram": flavor.ram,
            "disk": flavor.disk,
            "vcpus": flavor.vcpus,
            "swap": flavor.swap if version >= (2, 75) else (flavor.swap or ""),
            "OS-FLV-EXT-DATA:ephemeral": flavor.ephemeral,
            "os-flavor-access:is_public": flavor.is_public,
        }
    )
    if version < (2, 102):  # 2.102 removed them
        body.update({"rxtx_factor": 1.0, "OS-FLV-DISABLED:disabled": False})
    if version >= (2, 61):
        body["extra_specs"] = {}
    return body
