"""The sandbox's Nova and unmodified Nova answer alike: the same checks against both backends.

Each check is what a client (openstacksdk here, as the collection uses it) can see of Nova's
behaviour; a difference is a sandbox defect.
"""

from __future__ import annotations

import base64
import time
import typing as t
import uuid

import openstack
import pytest

from tests.integration.conftest import Backend, both_backends

pytestmark = both_backends

MICROVERSION = "2.52"
#: The server detail fields Nova 34 gives a project member at 2.52 (ACTIVE server, one network).
MEMBER_FIELDS = {
    "OS-DCF:diskConfig", "OS-EXT-AZ:availability_zone", "OS-EXT-STS:power_state", "OS-EXT-STS:task_state",
    "OS-EXT-STS:vm_state", "OS-SRV-USG:launched_at", "OS-SRV-USG:terminated_at", "accessIPv4", "accessIPv6",
    "addresses", "config_drive", "created", "description", "flavor", "hostId", "id", "image", "key_name", "links",
    "locked", "metadata", "name", "os-extended-volumes:volumes_attached", "progress", "security_groups", "status",
    "tags", "tenant_id", "updated", "user_id",
}  # fmt: skip
#: What an admin sees on top (2.3 added the user data and the rest of OS-EXT-SRV-ATTR, 2.16 host_status).
ADMIN_FIELDS = {
    "OS-EXT-SRV-ATTR:host", "OS-EXT-SRV-ATTR:hostname", "OS-EXT-SRV-ATTR:hypervisor_hostname",
    "OS-EXT-SRV-ATTR:instance_name", "OS-EXT-SRV-ATTR:kernel_id", "OS-EXT-SRV-ATTR:launch_index",
    "OS-EXT-SRV-ATTR:ramdisk_id", "OS-EXT-SRV-ATTR:reservation_id", "OS-EXT-SRV-ATTR:root_device_name",
    "OS-EXT-SRV-ATTR:user_data", "host_status",
}  # fmt: skip


@pytest.fixture
def member(backend: Backend) -> t.Iterator[t.Any]:
    with openstack.connect(cloud=backend.cloud) as conn:
        yield conn


@pytest.fixture
def admin(backend: Backend) -> t.Iterator[t.Any]:
    with openstack.connect(cloud=backend.admin_cloud) as conn:
        yield conn


class Servers:
    def __init__(self, conn: t.Any, backend: Backend) -> None:
        self.conn, self.backend = conn, backend
        self.ids: list[str] = []
        self.image = backend.pool_defaults["image"]
        if backend.name == "sandbox":
            self.image = conn.image.find_image(self.image, ignore_missing=False).id
        self.network = conn.network.find_network("runners-net").id if backend.name == "sandbox" else None

    def create(self, flavor: str = "m1.small", user_data: str | None = None) -> str:
        networks = [{"uuid": self.network or self.backend.pool_defaults["networks"][0]}]
        body: dict[str, t.Any] = {
            "name": f"fidelity-{uuid.uuid4().hex[:8]}",
            "flavorRef": self.conn.compute.find_flavor(flavor, ignore_missing=False).id,
            "imageRef": self.image,
            "networks": networks,
        }
        if user_data is not None:
            body["user_data"] = base64.b64encode(user_data.encode()).decode()
        response = self.conn.compute.post("/servers", json={"server": body}, microversion=MICROVERSION)
        assert response.status_code == 202, response.text
        self.ids.append(response.json()["server"]["id"])
        return self.ids[-1]

    def show(self, server_id: str, conn: t.Any = None) -> tuple[int, t.Any]:
        response = (conn or self.conn).compute.get(f"/servers/{server_id}", microversion=MICROVERSION)
        return response.status_code, response.json()

    def wait(self, server_id: str, *statuses: str) -> dict[str, t.Any]:
        deadline = time.monotonic() + 30
        while True:
            status, body = self.show(server_id)
            if status == 200 and body["server"]["status"] in statuses:
                return t.cast(dict[str, t.Any], body["server"])
            assert time.monotonic() < deadline, f"server {server_id} never reached {statuses}: {body}"
            time.sleep(0.05)

    def cleanup(self) -> None:
        for server_id in self.ids:
            self.conn.compute.delete(f"/servers/{server_id}")


@pytest.fixture
def servers(member: t.Any, backend: Backend) -> t.Iterator[Servers]:
    made = Servers(member, backend)
    yield made
    made.cleanup()


def test_version_document(member: t.Any) -> None:
    version = member.compute.get("/").json()["version"]
    assert (version["min_version"], version["version"]) == ("2.1", "2.104")


def test_unknown_path_is_webobs_html_404(member: t.Any) -> None:
    response = member.compute.get("/no-such-resource")
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<h1>404 Not Found</h1>" in response.text and "The resource could not be found." in response.text


def test_unknown_server_is_a_json_404(member: t.Any) -> None:
    server_id = str(uuid.uuid4())
    response = member.compute.get(f"/servers/{server_id}", microversion=MICROVERSION)
    assert response.status_code == 404
    assert response.json() == {"itemNotFound": {"code": 404, "message": f"Instance {server_id} could not be found."}}


def test_admins_see_the_user_data_members_do_not(member: t.Any, admin: t.Any, servers: Servers) -> None:
    server_id = servers.create(user_data="#!/bin/sh\necho secret\n")
    servers.wait(server_id, "ACTIVE")
    _status, as_member = servers.show(server_id)
    assert set(as_member["server"]) == MEMBER_FIELDS
    _status, as_admin = servers.show(server_id, admin)
    assert set(as_admin["server"]) == MEMBER_FIELDS | ADMIN_FIELDS
    encoded = as_admin["server"]["OS-EXT-SRV-ATTR:user_data"]
    assert base64.b64decode(encoded).decode() == "#!/bin/sh\necho secret\n"
    listed = admin.compute.get(f"/servers/detail?name={as_member['server']['name']}", microversion=MICROVERSION)
    assert [s["OS-EXT-SRV-ATTR:user_data"] for s in listed.json()["servers"]] == [encoded]
    listed = member.compute.get(f"/servers/detail?name={as_member['server']['name']}", microversion=MICROVERSION)
    assert not any(k.startswith("OS-EXT-SRV-ATTR") for s in listed.json()["servers"] for k in s)


def test_no_valid_host_fault(servers: Servers) -> None:
    server = servers.wait(servers.create(flavor="m1.unschedulable"), "ERROR")
    assert server["fault"]["code"] == 500
    assert server["fault"]["message"] == "No valid host was found. "


def test_reset_state_is_for_admins_and_records_no_fault(member: t.Any, admin: t.Any, servers: Servers) -> None:
    server_id = servers.create()
    servers.wait(server_id, "ACTIVE")
    action = {"os-resetState": {"state": "error"}}
    refused = member.compute.post(f"/servers/{server_id}/action", json=action, microversion=MICROVERSION)
    assert refused.status_code == 403
    assert "os_compute_api:os-admin-actions:reset_state" in refused.json()["forbidden"]["message"]
    assert admin.compute.post(f"/servers/{server_id}/action", json=action, microversion=MICROVERSION).status_code == 202
    server = servers.wait(server_id, "ERROR")
    assert "fault" not in server and server["OS-EXT-STS:vm_state"] == "error"


def test_deletion_goes_through_deleting_then_deleted_then_404(servers: Servers) -> None:
    server_id = servers.create()
    servers.wait(server_id, "ACTIVE")
    response = servers.conn.compute.delete(f"/servers/{server_id}")
    assert response.status_code == 204
    # Nova's order: the old status with task_state deleting, then DELETED, then 404. How much of
    # each a poll sees depends on timing, so only the order and the set of states are checked.
    order = [("ACTIVE", "deleting"), ("DELETED", None), (404, None)]
    seen: list[tuple[t.Any, t.Any]] = []
    deadline = time.monotonic() + 30
    while not seen or seen[-1][0] != 404:
        assert time.monotonic() < deadline, seen
        status, body = servers.show(server_id)
        state = (404, None) if status == 404 else (body["server"]["status"], body["server"]["OS-EXT-STS:task_state"])
        assert state in order, state
        if not seen or seen[-1] != state:
            seen.append(state)
        time.sleep(0.01)
    assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen)
    assert body == {"itemNotFound": {"code": 404, "message": f"Instance {server_id} could not be found."}}


def test_unknown_query_parameters_are_refused_from_2_75(member: t.Any) -> None:
    response = member.compute.get("/servers/detail?bogus=1", microversion="2.75")
    assert response.status_code == 400
    assert response.json()["badRequest"]["message"] == "'bogus' does not match any of the regexes: '^_'"
    assert member.compute.get("/servers/detail?bogus=1", microversion="2.74").status_code == 200
