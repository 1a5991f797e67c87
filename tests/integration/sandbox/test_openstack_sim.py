"""The OpenStack simulator, driven only through openstacksdk, keystoneauth and the openstack CLI."""

from __future__ import annotations

import base64
import json
import os
import pathlib
import re
import subprocess
import sys
import time
import typing as t
import uuid

import keystoneauth1.exceptions
import openstack
import pytest
import requests
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from openstack import exceptions as os_exc
from openstack import utils as os_utils

from tests.integration.conftest import SandboxHandle

pytestmark = pytest.mark.sandbox

RUNNER_IMAGE = "ubuntu-24.04-runner"
NETWORK = "runners-net"
NO_INGRESS = "runners-no-ingress"


@pytest.fixture(autouse=True)
def _cloud_env(sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    # As a user does after sourcing DIR/env.
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", sandbox.env["OS_CLIENT_CONFIG_FILE"])
    monkeypatch.setenv("OS_CLOUD", sandbox.env["OS_CLOUD"])


@pytest.fixture
def conn(fresh_sandbox_state: SandboxHandle) -> t.Iterator[openstack.connection.Connection]:
    connection = openstack.connect(cloud="sandbox")
    yield connection
    connection.close()


class Refs(t.NamedTuple):
    image: str
    flavor: str
    network: str


@pytest.fixture
def refs(conn: openstack.connection.Connection) -> Refs:
    return Refs(
        conn.image.find_image(RUNNER_IMAGE, ignore_missing=False).id,
        conn.compute.find_flavor("m1.small", ignore_missing=False).id,
        conn.network.find_network(NETWORK, ignore_missing=False).id,
    )


@pytest.fixture
def cleanup(conn: openstack.connection.Connection) -> t.Iterator[list[str]]:
    """Server ids to delete after the test."""
    ids: list[str] = []
    yield ids
    for server_id in ids:
        conn.compute.delete_server(server_id, ignore_missing=True)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def boot(conn: openstack.connection.Connection, refs: Refs, cleanup: list[str], name: str, **attrs: t.Any) -> t.Any:
    """Create a server by ids through the compute proxy (no waiting)."""
    server = conn.compute.create_server(
        name=name, imageRef=refs.image, flavorRef=refs.flavor, networks=[{"uuid": refs.network}], **attrs
    )
    cleanup.append(server.id)
    return server


def wait_active(conn: openstack.connection.Connection, server: t.Any) -> t.Any:
    return conn.compute.wait_for_server(server, status="ACTIVE", interval=0.1, wait=30)


# Identity ------------------------------------------------------------------------------
def test_password_auth_gives_catalog_of_compute_image_network(conn: openstack.connection.Connection) -> None:
    access = conn.session.auth.get_access(conn.session)
    types = {entry["type"] for entry in access.service_catalog.catalog}
    assert {"compute", "image", "network", "identity"} <= types
    for entry in access.service_catalog.catalog:
        assert {e["interface"] for e in entry["endpoints"]} == {"public", "internal"}
        assert {e["region_id"] for e in entry["endpoints"]} == {"RegionOne"}
    assert access.expires is not None
    assert "m1.small" in {f.name for f in conn.list_flavors()}


def test_application_credential_auth(sandbox: SandboxHandle) -> None:
    with openstack.connect(cloud="sandbox-appcred") as appcred:
        assert RUNNER_IMAGE in {image.name for image in appcred.image.images()}
        access = appcred.session.auth.get_access(appcred.session)
        assert access.application_credential_id is not None


def test_bad_password_is_401(sandbox: SandboxHandle) -> None:
    auth = yaml.safe_load(pathlib.Path(sandbox.env["OS_CLIENT_CONFIG_FILE"]).read_text())["clouds"]["sandbox"]["auth"]
    bad = openstack.connect(auth={**auth, "password": "wrong"}, auth_type="password", region_name="RegionOne")
    with pytest.raises(keystoneauth1.exceptions.Unauthorized):
        bad.list_servers()


def test_requests_without_or_with_expired_token_get_keystone_401(
    conn: openstack.connection.Connection, sandbox: SandboxHandle
) -> None:
    nova = conn.compute.get_endpoint()
    missing = requests.get(f"{nova}/servers", timeout=5)
    assert missing.status_code == 401
    assert missing.json() == {
        "error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}
    }
    assert missing.headers["WWW-Authenticate"].startswith("Keystone uri=")

    sandbox.set_config(openstack__token_ttl=0.5)
    with openstack.connect(cloud="sandbox") as short_lived:
        token = short_lived.session.get_token()
        time.sleep(0.6)
        expired = requests.get(f"{nova}/servers", headers={"X-Auth-Token": token}, timeout=5)
        assert expired.status_code == 401
        assert expired.json()["error"]["title"] == "Unauthorized"
        # keystoneauth renews a token that is about to expire, so the SDK keeps working.
        before = sandbox.calls("keystone", "POST", "/v3/auth/tokens")
        short_lived.list_flavors()
        short_lived.list_images()
        assert sandbox.calls("keystone", "POST", "/v3/auth/tokens") >= before + 2


def test_version_documents_need_no_token(conn: openstack.connection.Connection) -> None:
    nova = conn.compute.get_endpoint()
    root = nova.rsplit("/v2.1", 1)[0]
    versions = requests.get(root + "/", timeout=5).json()["versions"]
    current = next(v for v in versions if v["id"] == "v2.1")
    assert (current["min_version"], current["version"]) == ("2.1", "2.104")
    assert requests.get(nova, timeout=5).json()["version"]["status"] == "CURRENT"


# Microversions ---------------------------------------------------------------------------
def test_microversion_negotiation(conn: openstack.connection.Connection, refs: Refs, cleanup: list[str]) -> None:
    data = conn.compute.get_endpoint_data()
    assert (data.min_microversion, data.max_microversion) == ((2, 1), (2, 104))
    assert os_utils.maximum_supported_microversion(conn.compute, "2.110") == "2.104"

    echoed = conn.compute.get("/servers", microversion="2.52")
    assert echoed.headers["OpenStack-API-Version"] == "compute 2.52"
    assert echoed.headers["X-OpenStack-Nova-API-Version"] == "2.52"
    legacy = conn.compute.get("/servers", headers={"X-OpenStack-Nova-API-Version": "2.60"})
    assert legacy.headers["OpenStack-API-Version"] == "compute 2.60"
    default = conn.compute.get("/servers", microversion=None)
    assert default.headers["X-OpenStack-Nova-API-Version"] == "2.1"

    too_new = conn.compute.get("/servers", microversion="2.200")
    assert too_new.status_code == 406
    with pytest.raises(os_exc.HttpException, match=re.escape("Version 2.200 is not supported by the API")):
        os_exc.raise_from_response(too_new)

    body = {"server": {"name": unique("mv"), "imageRef": refs.image, "flavorRef": refs.flavor,
                       "networks": "auto", "tags": ["a"]}}  # fmt: skip
    old = conn.compute.post("/servers", json=body, microversion="2.51")
    with pytest.raises(
        os_exc.BadRequestException, match=r"Additional properties are not allowed \('tags' was unexpected\)"
    ):
        os_exc.raise_from_response(old)
    no_networks = {"server": {"name": unique("mv"), "imageRef": refs.image, "flavorRef": refs.flavor}}
    with pytest.raises(os_exc.BadRequestException, match="'networks' is a required property"):
        os_exc.raise_from_response(conn.compute.post("/servers", json=no_networks, microversion="2.37"))

    server = boot(conn, refs, cleanup, unique("mv"), tags=["t1"])
    assert "tags" not in conn.compute.get(f"/servers/{server.id}", microversion="2.25").json()["server"]
    assert conn.compute.get(f"/servers/{server.id}", microversion="2.26").json()["server"]["tags"] == ["t1"]


# Servers -----------------------------------------------------------------------------------
def test_create_server_by_names_with_wait(
    conn: openstack.connection.Connection, sandbox: SandboxHandle, cleanup: list[str]
) -> None:
    name = unique("cloud-layer")
    script = "#!/bin/bash\necho no runner in this one\n"  # a runner script with a bad JIT config would power off
    server = conn.create_server(
        name,
        image=RUNNER_IMAGE,
        flavor="m1.small",
        network=NETWORK,
        security_groups=[NO_INGRESS],
        userdata=script,
        meta={"ghr_runner_id": "42"},
        tags=["ghr-controller=it", "ghr-pool=cloud-layer"],
        wait=True,
        timeout=60,
    )
    cleanup.append(server.id)
    assert server.status == "ACTIVE"
    assert server.metadata == {"ghr_runner_id": "42"}
    assert sorted(server.tags) == ["ghr-controller=it", "ghr-pool=cloud-layer"]
    assert server.security_groups == [{"name": NO_INGRESS}]
    assert server.private_v4.startswith("10.20.")
    ports = list(conn.network.ports(device_id=server.id))
    assert [p.fixed_ips[0]["ip_address"] for p in ports] == [server.private_v4]
    group = conn.network.find_security_group(NO_INGRESS, ignore_missing=False)
    assert ports[0].security_group_ids == [group.id]
    assert conn.delete_server(name, wait=True, timeout=60)
    # openstacksdk's wait ends at status DELETED; the server 404s once the compute host is done.
    wait_gone(conn, server.id)
    assert conn.get_server(name) is None
    types = [e["type"] for e in sandbox.events() if e.get("id") == server.id]
    assert types == ["server_create", "server_active", "server_delete"]


def test_create_response_is_minimal_and_build_becomes_active(
    conn: openstack.connection.Connection, refs: Refs, cleanup: list[str]
) -> None:
    created = boot(conn, refs, cleanup, unique("minimal"))
    assert created.status is None  # Nova's 202 carries id, links, adminPass, diskConfig, security groups only
    assert created.admin_password
    assert conn.compute.get_server(created.id).status in ("BUILD", "ACTIVE")
    server = wait_active(conn, created)
    assert server.addresses[NETWORK][0]["OS-EXT-IPS:type"] == "fixed"
    assert server.flavor.original_name == "m1.small"


def test_list_filters_tags_server_side(
    conn: openstack.connection.Connection, refs: Refs, cleanup: list[str], sandbox: SandboxHandle
) -> None:
    ctl = unique("ctl")
    tagged = {
        "a": [f"ghr-controller={ctl}", "ghr-pool=a"],
        "b": [f"ghr-controller={ctl}", "ghr-pool=b"],
        "c": [f"ghr-controller={ctl}-other", "ghr-pool=a"],
    }
    names = {key: boot(conn, refs, cleanup, unique(f"tags-{key}"), tags=tags).name for key, tags in tagged.items()}

    def names_of(**query: str) -> set[str]:
        return {s.name for s in conn.compute.servers(**query)}

    assert names_of(tags=f"ghr-controller={ctl},ghr-pool=a") == {names["a"]}
    assert names_of(tags=f"ghr-controller={ctl}") == {names["a"], names["b"]}
    assert names_of(any_tags=f"ghr-controller={ctl},ghr-controller={ctl}-other") == set(names.values())
    both = names_of(tags=f"ghr-controller={ctl}", not_tags="ghr-pool=b")
    assert both == {names["a"]}
    sandbox.reset_counters()
    cloud_layer = conn.list_servers(filters={"tags": f"ghr-controller={ctl},ghr-pool=b"})
    assert [s.name for s in cloud_layer] == [names["b"]]
    assert sandbox.calls("nova", "GET", "/servers/detail") == 1


def test_list_paginates_with_limit_and_marker(
    conn: openstack.connection.Connection, refs: Refs, cleanup: list[str], sandbox: SandboxHandle
) -> None:
    prefix = unique("page")
    created = [boot(conn, refs, cleanup, f"{prefix}-{i}").id for i in range(5)]
    sandbox.reset_counters()
    listed = [s.id for s in conn.compute.servers(details=False, limit=2, name=f"^{prefix}-")]
    assert listed == list(reversed(created))  # newest first, as Nova sorts by created_at desc
    # Pages of 2, 2 and 1 following servers_links, then the SDK's own probe past a short last page.
    assert sandbox.calls("nova", "GET", "/servers") == 4
    first = conn.compute.get("/servers", params={"limit": 2, "name": f"^{prefix}-"}).json()
    assert first["servers_links"][0]["rel"] == "next"
    assert f"marker={listed[1]}" in first["servers_links"][0]["href"]
    with pytest.raises(os_exc.BadRequestException, match=r"marker \[nope\] not found"):
        os_exc.raise_from_response(conn.compute.get("/servers", params={"marker": "nope"}))


def test_delete_shows_deleted_then_not_found(
    conn: openstack.connection.Connection, refs: Refs, cleanup: list[str], sandbox: SandboxHandle
) -> None:
    server = wait_active(conn, boot(conn, refs, cleanup, unique("del")))
    sandbox.set_config(openstack__delete_delay=2.0, openstack__deleted_linger=2.0)
    conn.compute.delete_server(server)
    # As Nova: the status stays while the host deletes (task_state deleting), then DELETED, then 404.
    deleting = conn.compute.get_server(server.id)
    assert (deleting.status, deleting.task_state) == ("ACTIVE", "deleting")
    with pytest.raises(os_exc.ConflictException, match="while it is in task_state deleting"):
        os_exc.raise_from_response(conn.compute.post(f"/servers/{server.id}/action", json={"os-stop": None}))
    deadline = time.monotonic() + 20
    while conn.compute.get_server(server.id).status != "DELETED":
        assert time.monotonic() < deadline, "never listed as DELETED"
        time.sleep(0.05)
    assert server.id in {s.id for s in conn.compute.servers()}
    wait_gone(conn, server.id)
    with pytest.raises(os_exc.NotFoundException, match=f"Instance {server.id} could not be found."):
        conn.compute.get_server(server.id)
    assert conn.get_server(server.id) is None
    event = next(e for e in sandbox.events("server_delete") if e["id"] == server.id)
    assert event["runner_busy"] is None  # no GitHub runner of that name
    assert [p.id for p in conn.network.ports(device_id=server.id)] == []


def test_server_error_fault_reaches_the_client(
    conn: openstack.connection.Connection, sandbox: SandboxHandle, cleanup: list[str]
) -> None:
    name = unique("broken")
    sandbox.add_fault(kind="server_error", match={"name": name}, message="Build of instance aborted: disk full")
    with pytest.raises(
        os_exc.SDKException, match="Compute service reports fault: Build of instance aborted: disk full"
    ):
        conn.create_server(name, image=RUNNER_IMAGE, flavor="m1.small", network=NETWORK, wait=True, timeout=60)
    server = conn.compute.find_server(name, ignore_missing=False)
    cleanup.append(server.id)
    assert server.status == "ERROR"
    assert server.fault["code"] == 500
    assert server.fault["message"] == "Build of instance aborted: disk full"
    assert "created" in server.fault
    assert [e["name"] for e in sandbox.events("server_error")][-1] == name


def test_quota_exceeded_is_forbidden_with_novas_message(
    conn: openstack.connection.Connection, refs: Refs, cleanup: list[str], sandbox: SandboxHandle
) -> None:
    wait_for_idle_host(sandbox)
    limits = conn.compute.get_limits().absolute
    used = limits.instances_used
    sandbox.set_config(openstack__quota__instances=used + 1)
    wait_active(conn, boot(conn, refs, cleanup, unique("quota")))  # in the cell: counted by the next POST
    with pytest.raises(os_exc.ForbiddenException) as raised:
        boot(conn, refs, cleanup, unique("quota"))
    expected = f"Quota exceeded for instances: Requested 1, but already used {used + 1} of {used + 1} instances"
    assert expected in str(raised.value)
    after = conn.compute.get_limits().absolute
    assert (after.instances, after.instances_used) == (used + 1, used + 1)

    sandbox.set_config(openstack__quota__instances=-1, openstack__quota__cores=after.total_cores_used + 1)
    medium = conn.compute.find_flavor("m1.medium", ignore_missing=False)
    with pytest.raises(os_exc.ForbiddenException, match="Quota exceeded for cores: Requested 2"):
        conn.compute.create_server(name=unique("quota"), imageRef=refs.image, flavorRef=medium.id, networks="auto")

    sandbox.reset_config()
    sandbox.add_fault(kind="quota_exceeded", count=1)
    with pytest.raises(os_exc.ForbiddenException, match="Quota exceeded for instances"):
        boot(conn, refs, cleanup, unique("quota"))
    boot(conn, refs, cleanup, unique("quota"))  # the fault fired once


def wait_gone(conn: openstack.connection.Connection, server_id: str) -> None:
    # openstacksdk's wait_for_delete already returns on status DELETED; wait for the 404.
    deadline = time.monotonic() + 30
    while conn.compute.find_server(server_id) is not None:
        assert time.monotonic() < deadline, f"server {server_id} never went away"
        time.sleep(0.1)


def wait_for_idle_host(sandbox: SandboxHandle) -> None:
    deadline = time.monotonic() + 30
    while any(sandbox.state()["openstack"]["compute_host"].values()):
        assert time.monotonic() < deadline, "compute host never went idle"
        time.sleep(0.05)


def test_request_validation_matches_nova(conn: openstack.connection.Connection, refs: Refs, cleanup: list[str]) -> None:
    def create(**attrs: t.Any) -> t.Any:
        return boot(conn, refs, cleanup, unique("valid"), **attrs)

    fits = base64.b64encode(b"x" * 49149).decode()  # 65,532 characters encoded
    create(user_data=fits)
    too_long = base64.b64encode(b"x" * 49152).decode()  # 65,536 characters
    with pytest.raises(os_exc.BadRequestException, match="Invalid input for field/attribute user_data"):
        create(user_data=too_long)
    with pytest.raises(os_exc.BadRequestException, match="is not a 'base64'"):
        create(user_data="not base64!")
    with pytest.raises(os_exc.BadRequestException, match="Invalid input for field/attribute metadata"):
        create(metadata={"k" * 256: "v"})
    with pytest.raises(os_exc.BadRequestException, match="is too long"):
        create(metadata={"k": "v" * 256})
    with pytest.raises(os_exc.ForbiddenException, match="Maximum number of metadata items exceeds 128"):
        create(metadata={f"k{i}": "v" for i in range(129)})
    with pytest.raises(os_exc.BadRequestException, match="does not match"):
        create(tags=["a/b"])
    with pytest.raises(os_exc.BadRequestException, match="is too long"):
        create(tags=[f"t{i}" for i in range(51)])
    with pytest.raises(os_exc.BadRequestException, match=re.escape("Security group nope not found.")):
        create(security_groups=[{"name": "nope"}])
    with pytest.raises(os_exc.BadRequestException, match=re.escape("Invalid key_name provided.")):
        create(key_name="nope")
    with pytest.raises(os_exc.BadRequestException, match=re.escape("Flavor 999 could not be found.")):
        conn.compute.create_server(name="x", imageRef=refs.image, flavorRef="999", networks="auto")


def test_error_bodies_raise_the_sdk_exceptions(conn: openstack.connection.Connection) -> None:
    with pytest.raises(os_exc.ResourceNotFound, match=re.escape("Instance nope could not be found.")):
        conn.compute.get_server("nope")
    missing = conn.compute.get("/servers/nope")
    assert missing.json() == {"itemNotFound": {"code": 404, "message": "Instance nope could not be found."}}
    with pytest.raises(os_exc.NotFoundException, match=re.escape("Network nope could not be found.")):
        conn.network.get_network("nope")
    assert conn.network.get("/networks/nope").json()["NeutronError"]["type"] == "NetworkNotFound"
    with pytest.raises(os_exc.NotFoundException, match="No image found with ID nope"):
        conn.image.get_image("nope")
    assert conn.get_image("nope") is None
    assert conn.get_network("nope") is None


def test_server_tags_and_metadata_apis(
    conn: openstack.connection.Connection, refs: Refs, cleanup: list[str], sandbox: SandboxHandle
) -> None:
    sandbox.set_config(openstack__boot_delay=2.0)
    server = boot(conn, refs, cleanup, unique("apis"), tags=["one"], metadata={"a": "1"})
    with pytest.raises(os_exc.ConflictException, match="while it is in vm_state building"):
        conn.compute.add_tag_to_server(server, "two")
    server = wait_active(conn, server)
    conn.compute.add_tag_to_server(server, "two")
    assert sorted(conn.compute.get_server(server.id).tags) == ["one", "two"]
    conn.compute.remove_tag_from_server(server, "one")
    assert conn.compute.get_server(server.id).tags == ["two"]
    conn.compute.set_server_metadata(server, b="2")
    assert conn.compute.get_server_metadata(server).metadata == {"a": "1", "b": "2"}
    conn.compute.delete_server_metadata(server, ["a"])
    assert conn.compute.get_server(server.id).metadata == {"b": "2"}


def test_power_off_and_events(
    conn: openstack.connection.Connection, refs: Refs, cleanup: list[str], sandbox: SandboxHandle
) -> None:
    server = wait_active(conn, boot(conn, refs, cleanup, unique("power")))
    conn.compute.stop_server(server)
    assert conn.compute.get_server(server.id).status == "SHUTOFF"
    assert server.id in {e["id"] for e in sandbox.events("server_power_off")}
    snapshot = next(s for s in sandbox.state()["openstack"]["servers"] if s["id"] == server.id)
    assert snapshot["status"] == "SHUTOFF"
    assert "user_data" not in snapshot


def test_builds_queue_on_the_compute_host(
    conn: openstack.connection.Connection, refs: Refs, cleanup: list[str], sandbox: SandboxHandle
) -> None:
    wait_for_idle_host(sandbox)
    sandbox.set_config(
        openstack__compute_concurrency=1, openstack__boot_delay=3.0, openstack__delete_delay=0.0,
        openstack__schedule_delay=0.0,
    )  # fmt: skip
    servers = [boot(conn, refs, cleanup, unique("queue")) for _attempt in range(3)]
    deadline = time.monotonic() + 10
    while (host := sandbox.state()["openstack"]["compute_host"])["scheduling"]:
        assert time.monotonic() < deadline, "never scheduled"
        time.sleep(0.02)
    assert host == {"scheduling": 0, "running": 1, "waiting": 2}
    statuses = [conn.compute.get_server(s.id).status for s in servers]
    assert statuses.count("BUILD") >= 2


def test_a_deleted_building_server_frees_its_place_on_the_compute_host(
    conn: openstack.connection.Connection, refs: Refs, cleanup: list[str], sandbox: SandboxHandle
) -> None:
    wait_for_idle_host(sandbox)
    sandbox.set_config(
        openstack__compute_concurrency=1, openstack__boot_delay=600.0, openstack__delete_delay=0.0,
        openstack__schedule_delay=0.0,
    )  # fmt: skip
    first, second = (boot(conn, refs, cleanup, unique("freed")) for _attempt in range(2))
    deadline = time.monotonic() + 10
    while sandbox.state()["openstack"]["compute_host"] != {"scheduling": 0, "running": 1, "waiting": 1}:
        assert time.monotonic() < deadline, sandbox.state()["openstack"]["compute_host"]
        time.sleep(0.02)
    conn.compute.delete_server(first.id)
    # The second build runs in the first one's place (the delete queues behind it) instead of both
    # waiting behind a build that is gone.
    deadline = time.monotonic() + 10
    while (host := sandbox.state()["openstack"]["compute_host"]) != {"scheduling": 0, "running": 1, "waiting": 1}:
        assert time.monotonic() < deadline, host
        time.sleep(0.05)
    time.sleep(0.5)
    assert sandbox.state()["openstack"]["compute_host"] == {"scheduling": 0, "running": 1, "waiting": 1}
    assert conn.compute.get_server(second.id).status == "BUILD"


def test_flavors_keypairs_limits_and_availability_zones(conn: openstack.connection.Connection) -> None:
    assert {"m1.small", "m1.medium"} <= {f.name for f in conn.compute.flavors()}
    small = conn.compute.find_flavor("m1.small", ignore_missing=False)
    assert (small.vcpus, small.ram, small.disk) == (1, 2048, 20)
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    public = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    name = unique("key")
    created = conn.compute.create_keypair(name=name, public_key=public)
    assert re.fullmatch(r"([0-9a-f]{2}:){15}[0-9a-f]{2}", created.fingerprint)
    assert name in {k.name for k in conn.compute.keypairs()}
    with pytest.raises(os_exc.ConflictException, match=f"Key pair '{name}' already exists."):
        conn.compute.create_keypair(name=name, public_key=public)
    conn.compute.delete_keypair(name)
    assert conn.compute.find_keypair(name) is None
    assert [z.name for z in conn.compute.availability_zones()] == ["nova"]
    assert conn.get_compute_limits().max_total_instances == 200


def test_neutron_security_groups_and_networks(conn: openstack.connection.Connection) -> None:
    network = conn.network.find_network(NETWORK, ignore_missing=False)
    subnet = conn.network.get_subnet(network.subnet_ids[0])
    assert subnet.cidr == "10.20.0.0/16"
    no_ingress = conn.network.find_security_group(NO_INGRESS, ignore_missing=False)
    assert {r["direction"] for r in no_ingress.security_group_rules} == {"egress"}
    group = conn.network.create_security_group(name=unique("sg"), description="test")
    rule = conn.network.create_security_group_rule(security_group_id=group.id, direction="ingress", protocol="tcp",
                                                   port_range_min=22, port_range_max=22, remote_ip_prefix="10.0.0.0/8")  # fmt: skip
    with pytest.raises(os_exc.ConflictException, match="Security group rule already exists"):
        conn.network.create_security_group_rule(security_group_id=group.id, direction="ingress", protocol="tcp",
                                                port_range_min=22, port_range_max=22, remote_ip_prefix="10.0.0.0/8")  # fmt: skip
    conn.network.delete_security_group_rule(rule)
    conn.network.delete_security_group(group)
    assert conn.network.find_security_group(group.name) is None
    with pytest.raises(os_exc.BadRequestException, match="is invalid attribute for filtering"):
        os_exc.raise_from_response(conn.network.get("/networks?colour=blue"))


# HTTP faults ------------------------------------------------------------------------------
def test_http_faults_surface_in_openstacksdk(conn: openstack.connection.Connection, sandbox: SandboxHandle) -> None:
    sandbox.add_fault(kind="status", service="nova", method="GET", route="/servers/detail", status=500, count=1)
    with pytest.raises(os_exc.HttpException) as raised:
        conn.list_servers()
    assert raised.value.status_code == 500
    conn.list_servers()  # once only

    # Two: openstacksdk up to 4.14 repeats a request once after a connection failure.
    sandbox.add_fault(kind="reset", service="nova", route="/servers/detail", count=2)
    with pytest.raises(keystoneauth1.exceptions.ConnectFailure):
        conn.list_servers()
    sandbox.clear_faults()

    sandbox.add_fault(kind="status", service="neutron", route="/v2.0/networks/{id}", status=503, count=1)
    with pytest.raises(os_exc.HttpException) as unavailable:
        conn.network.get_network("anything")
    assert unavailable.value.status_code == 503

    with openstack.connect(cloud="sandbox", api_timeout=1) as impatient:
        impatient.list_flavors()
        sandbox.add_fault(kind="hang", service="nova", route="/servers/detail", hang_seconds=3, count=2)
        with pytest.raises(keystoneauth1.exceptions.ConnectTimeout):
            impatient.list_servers()
        sandbox.clear_faults()


# The openstack CLI ---------------------------------------------------------------------------
def test_openstack_cli_server_list(
    conn: openstack.connection.Connection, refs: Refs, cleanup: list[str], sandbox: SandboxHandle
) -> None:
    server = wait_active(conn, boot(conn, refs, cleanup, unique("cli")))
    cli = pathlib.Path(sys.executable).parent / "openstack"
    env = {
        **os.environ,
        "OS_CLIENT_CONFIG_FILE": sandbox.env["OS_CLIENT_CONFIG_FILE"],
        "OS_CLOUD": sandbox.env["OS_CLOUD"],
    }
    out = subprocess.run(
        [str(cli), "server", "list", "-f", "json"], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    rows = {row["Name"]: row for row in json.loads(out.stdout)}
    assert rows[server.name]["Status"] == "ACTIVE"
    assert rows[server.name]["Image"] == RUNNER_IMAGE
    assert rows[server.name]["Flavor"] == "m1.small"
    assert rows[server.name]["Networks"] == {NETWORK: [server.addresses[NETWORK][0]["addr"]]}
