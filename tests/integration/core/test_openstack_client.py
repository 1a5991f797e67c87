"""CloudClient against the OpenStack simulator over HTTP: call budgets, tags, faults, errors."""

from __future__ import annotations

import datetime
import time
import traceback
import typing as t
import uuid

import pytest
import yaml

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import PoolSpec, parse_pool
from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import CloudError, QuotaExceededError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._identity import (
    controller_tag,
    pool_tag,
    vm_metadata,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._openstack import CloudClient, CloudOptions
from ansible_collections.selfhosted.github_runners.plugins.module_utils._retry import RetryPolicy
from tests.integration.conftest import SandboxHandle

pytestmark = pytest.mark.sandbox

FAST_RETRY = RetryPolicy(attempts=3, base=0.05, cap=0.2, budget=30.0)
DETAIL = "/servers/detail"
SERVERS = "/servers"
USER_DATA = "#!/bin/bash\necho no runner here\n"


@pytest.fixture
def env(sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", sandbox.env["OS_CLIENT_CONFIG_FILE"])
    return sandbox.env


def connect(env: dict[str, str], timeout: float = 5, **kwargs: t.Any) -> CloudClient:
    kwargs.setdefault("retry", FAST_RETRY)
    return CloudClient.connect(CloudOptions(cloud=env["OS_CLOUD"], api_timeout=timeout), **kwargs)


@pytest.fixture
def cloud(fresh_sandbox_state: SandboxHandle, env: dict[str, str]) -> t.Iterator[CloudClient]:
    client = connect(env)
    client.list_servers("warm-up")  # Keystone token and version discovery, once per connection
    yield client
    client.close()


@pytest.fixture
def ids() -> dict[str, str]:
    """A controller id and pool of our own, so other tests' servers never show up."""
    suffix = uuid.uuid4().hex[:6]
    return {"controller": f"itos{suffix}", "pool": "small"}


def pool_spec(sandbox: SandboxHandle, **overrides: t.Any) -> PoolSpec:
    spec = {
        "name": "small",
        "repository": sandbox.env["GITHUB_REPOSITORY"],
        "labels": ["self-hosted"],
        "flavor": "m1.small",
        "image": "ubuntu-24.04-runner",
        "networks": ["runners-net"],
        "security_groups": ["runners-no-ingress"],
    }
    spec.update(overrides)
    return parse_pool(spec)


class Servers:
    """Creates servers with our tags and deletes them at the end."""

    def __init__(self, cloud: CloudClient, controller: str, pool: PoolSpec) -> None:
        self.cloud, self.controller, self.pool = cloud, controller, pool
        self.created: list[str] = []

    def create(self, name: str | None = None, runner_id: int = 1) -> str:
        name = name or f"{self.controller}-{self.pool.name}-{uuid.uuid4().hex[:12]}"
        metadata = vm_metadata(runner_id, datetime.datetime.now(datetime.UTC), self.pool.scope)
        tags = [controller_tag(self.controller), pool_tag(self.pool.name)]
        server_id = self.cloud.create_server(name, self.pool, USER_DATA, metadata, tags)
        self.created.append(server_id)
        return server_id

    def cleanup(self) -> None:
        for server_id in self.created:
            self.cloud.delete_server(server_id)


@pytest.fixture
def servers(sandbox: SandboxHandle, cloud: CloudClient, ids: dict[str, str]) -> t.Iterator[Servers]:
    made = Servers(cloud, ids["controller"], pool_spec(sandbox))
    yield made
    made.cleanup()


def wait_for(predicate: t.Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_list_servers_is_one_filtered_request(
    sandbox: SandboxHandle, cloud: CloudClient, servers: Servers, ids: dict[str, str]
) -> None:
    made = {servers.create(runner_id=i) for i in (11, 12, 13)}
    other = Servers(cloud, ids["controller"] + "x", servers.pool)  # another controller: never listed
    other.create()
    try:
        sandbox.reset_counters()
        vms = cloud.list_servers(ids["controller"])
        assert {vm.id for vm in vms} == made
        assert sandbox.counters() == [{"service": "nova", "method": "GET", "route": DETAIL, "count": 1}]
        assert {vm.pool for vm in vms} == {"small"}
        assert {vm.runner_id for vm in vms} == {11, 12, 13}
        assert all(vm.created_at.tzinfo is not None for vm in vms)
        assert cloud.list_servers(ids["controller"], pool="other") == []
    finally:
        other.cleanup()


def test_listing_follows_novas_pages_only(
    sandbox: SandboxHandle, cloud: CloudClient, servers: Servers, ids: dict[str, str]
) -> None:
    made = {servers.create() for _unused in range(3)}
    sandbox.set_config({"openstack.max_limit": 2})
    sandbox.reset_counters()
    assert {vm.id for vm in cloud.list_servers(ids["controller"], ids["pool"])} == made
    assert sandbox.calls("nova", "GET", DETAIL) == 2  # a full page of 2 points to the next one
    assert sandbox.calls("nova") == 2


def test_creates_resolve_flavor_image_and_network_once(
    sandbox: SandboxHandle, cloud: CloudClient, servers: Servers
) -> None:
    sandbox.reset_counters()
    servers.create()
    lookups = sandbox.calls("nova", "GET") + sandbox.calls("glance") + sandbox.calls("neutron")
    assert lookups > 0
    for _unused in range(4):
        servers.create()
    assert sandbox.calls("nova", "POST", SERVERS) == 5
    assert sandbox.calls("nova", "GET") + sandbox.calls("glance") + sandbox.calls("neutron") == lookups
    assert cloud.calls["create_server"] == 5
    assert cloud.calls["find_flavor"] == cloud.calls["find_image"] == cloud.calls["find_network"] == 1


@pytest.mark.parametrize("networks", ["by-id", "none", "auto"])
def test_ids_none_and_auto_need_neither_glance_nor_neutron(
    sandbox: SandboxHandle, cloud: CloudClient, ids: dict[str, str], networks: str
) -> None:
    state = sandbox.state()["openstack"]
    image_id = next(i["id"] for i in state["images"] if i["name"] == "ubuntu-24.04-runner")
    net_id = next(n["id"] for n in state["networks"] if n["name"] == "runners-net")
    given = [net_id] if networks == "by-id" else [networks]
    pool = pool_spec(sandbox, image=image_id, networks=given, security_groups=[] if networks == "none" else None)
    made = Servers(cloud, ids["controller"], pool)
    sandbox.reset_counters()
    try:
        server_id = made.create()
        assert sandbox.calls("glance") == sandbox.calls("neutron") == 0
        assert "find_image" not in cloud.calls and "find_network" not in cloud.calls
        record = next(s for s in sandbox.state()["openstack"]["servers"] if s["id"] == server_id)
        assert record["image_id"] == image_id
        assert record["networks"] == ([] if networks == "none" else [net_id])
    finally:
        made.cleanup()


def test_created_server_carries_tags_metadata_and_user_data(
    sandbox: SandboxHandle, cloud: CloudClient, servers: Servers, ids: dict[str, str]
) -> None:
    server_id = servers.create(runner_id=77)
    record = next(s for s in sandbox.state()["openstack"]["servers"] if s["id"] == server_id)
    assert set(record["tags"]) == {controller_tag(ids["controller"]), pool_tag(ids["pool"])}
    assert record["metadata"]["ghr_runner_id"] == "77"
    assert "ghr_created_at" in record["metadata"]
    wait_for(lambda: cloud.list_servers(ids["controller"])[0].status == "ACTIVE", "the server to boot")


def test_boot_from_volume_uses_a_block_device_mapping(
    sandbox: SandboxHandle, cloud: CloudClient, ids: dict[str, str]
) -> None:
    made = Servers(cloud, ids["controller"], pool_spec(sandbox, boot_from_volume=True, volume_size=20))
    try:
        server_id = made.create()
        vms = cloud.list_servers(ids["controller"])
        assert [vm.id for vm in vms] == [server_id]
    finally:
        made.cleanup()


def test_delete_server_deleted_then_not_found(sandbox: SandboxHandle, cloud: CloudClient, servers: Servers) -> None:
    server_id = servers.create()
    assert cloud.delete_server(server_id) == "deleted"
    servers.created.remove(server_id)
    wait_for(lambda: cloud.delete_server(server_id) == "not_found", "the server to be gone")
    assert cloud.delete_server(str(uuid.uuid4())) == "not_found"


def test_a_server_being_deleted_is_not_listed(
    sandbox: SandboxHandle, cloud: CloudClient, servers: Servers, ids: dict[str, str]
) -> None:
    """Nova lists it with task_state deleting, then as DELETED: it is going, so not one of ours to act on."""
    kept, going = servers.create(), servers.create()
    wait_for(lambda: {vm.status for vm in cloud.list_servers(ids["controller"])} == {"ACTIVE"}, "both ACTIVE")
    sandbox.set_config({"openstack.delete_delay": 1.0, "openstack.deleted_linger": 1.0})
    assert cloud.delete_server(going) == "deleted"
    servers.created.remove(going)
    seen: set[tuple[str, t.Any]] = set()
    while (state := next((s for s in sandbox.state()["openstack"]["servers"] if s["id"] == going), None)) is not None:
        seen.add((state["status"], state["task_state"]))
        assert [vm.id for vm in cloud.list_servers(ids["controller"])] == [kept]
    assert ("ACTIVE", "deleting") in seen or ("DELETED", None) in seen


def test_error_server_shows_novas_fault_message(
    sandbox: SandboxHandle, cloud: CloudClient, servers: Servers, ids: dict[str, str]
) -> None:
    name = f"{ids['controller']}-small-{uuid.uuid4().hex[:12]}"
    sandbox.add_fault(kind="server_error", match={"name": name}, message="No valid host was found. Injected.")
    servers.create(name)
    wait_for(lambda: cloud.list_servers(ids["controller"])[0].status == "ERROR", "the server to fail")
    (vm,) = cloud.list_servers(ids["controller"])
    assert vm.fault == "No valid host was found. Injected."


def test_quota_exceeded_is_not_retried_and_keeps_novas_message(
    sandbox: SandboxHandle, cloud: CloudClient, servers: Servers, ids: dict[str, str]
) -> None:
    name = f"{ids['controller']}-small-{uuid.uuid4().hex[:12]}"
    sandbox.add_fault(kind="quota_exceeded", match={"name": name})
    sandbox.reset_counters()
    with pytest.raises(QuotaExceededError) as info:
        servers.create(name)
    assert info.value.status == 403
    assert "Quota exceeded for instances" in str(info.value)
    assert sandbox.calls("nova", "POST", SERVERS) == 1


def test_real_quota_is_a_quota_error(
    sandbox: SandboxHandle, cloud: CloudClient, servers: Servers, ids: dict[str, str]
) -> None:
    # As Nova counts them: a server already being deleted (another test's) holds no quota.
    servers_now = sandbox.state()["openstack"]["servers"]
    used = len([s for s in servers_now if s.get("status") != "DELETED" and s.get("task_state") != "deleting"])
    sandbox.set_config({"openstack.quota.instances": used})
    with pytest.raises(QuotaExceededError, match="Quota exceeded"):
        servers.create()


def test_500_on_create_is_not_retried(sandbox: SandboxHandle, cloud: CloudClient, servers: Servers) -> None:
    sandbox.add_fault(kind="status", service="nova", method="POST", route=SERVERS, status=500, count=1)
    sandbox.reset_counters()
    with pytest.raises(CloudError) as info:
        servers.create()
    assert info.value.status == 500
    assert "POST /servers" in str(info.value)
    assert sandbox.calls("nova", "POST", SERVERS) == 1


def test_503_and_409_are_retried_but_not_on_create(
    sandbox: SandboxHandle, cloud: CloudClient, servers: Servers, ids: dict[str, str]
) -> None:
    sandbox.add_fault(kind="status", service="nova", method="GET", route=DETAIL, status=503, count=1)
    sandbox.add_fault(kind="status", service="nova", method="GET", route=DETAIL, status=409, count=1)
    sandbox.reset_counters()
    cloud.list_servers(ids["controller"])
    assert sandbox.calls("nova", "GET", DETAIL) == 3
    # A create that may have been carried out is not repeated (it could boot a second VM).
    sandbox.add_fault(kind="status", service="nova", method="POST", route=SERVERS, status=503, count=1)
    with pytest.raises(CloudError) as info:
        servers.create()
    assert info.value.status == 503
    assert sandbox.calls("nova", "POST", SERVERS) == 1


def test_a_hang_is_cut_by_the_api_timeout(
    fresh_sandbox_state: SandboxHandle, env: dict[str, str], ids: dict[str, str]
) -> None:
    sandbox = fresh_sandbox_state
    cloud = connect(env, timeout=1)
    cloud.list_servers(ids["controller"])
    sandbox.add_fault(kind="hang", service="nova", method="GET", route=DETAIL, hang_seconds=3, count=1)
    sandbox.reset_counters()
    cloud.list_servers(ids["controller"])  # the retry succeeds
    assert sandbox.calls("nova", "GET", DETAIL) == 2
    sandbox.add_fault(kind="hang", service="nova", method="GET", route=DETAIL, hang_seconds=2, count=None)
    with pytest.raises(CloudError, match="no answer"):
        cloud.list_servers(ids["controller"])
    sandbox.clear_faults()
    cloud.close()


def test_a_timed_out_create_is_not_repeated(
    fresh_sandbox_state: SandboxHandle, env: dict[str, str], ids: dict[str, str]
) -> None:
    sandbox = fresh_sandbox_state
    cloud = connect(env, timeout=1)
    made = Servers(cloud, ids["controller"], pool_spec(sandbox))
    made.create()  # look-ups done
    sandbox.add_fault(kind="hang", service="nova", method="POST", route=SERVERS, hang_seconds=2, count=1)
    sandbox.reset_counters()
    with pytest.raises(CloudError, match="no answer"):
        made.create()
    assert sandbox.calls("nova", "POST", SERVERS) == 1
    made.cleanup()
    cloud.close()


def test_unknown_flavor_is_a_clear_error(sandbox: SandboxHandle, cloud: CloudClient, ids: dict[str, str]) -> None:
    made = Servers(cloud, ids["controller"], pool_spec(sandbox, flavor="no-such-flavor"))
    with pytest.raises(CloudError, match="no-such-flavor"):
        made.create()


def test_application_credential_cloud(sandbox: SandboxHandle, env: dict[str, str], ids: dict[str, str]) -> None:
    client = CloudClient.connect(CloudOptions(cloud="sandbox-appcred", api_timeout=5))
    assert client.list_servers(ids["controller"]) == []
    client.close()


def test_bad_credentials_error_has_no_password(sandbox: SandboxHandle, env: dict[str, str]) -> None:
    with open(env["OS_CLIENT_CONFIG_FILE"]) as fh:
        cloud_cfg = yaml.safe_load(fh)["clouds"][env["OS_CLOUD"]]
    auth = dict(cloud_cfg["auth"], password="wrong-" + uuid.uuid4().hex)
    client = CloudClient.connect(
        CloudOptions(auth=auth, auth_type="password", region_name=cloud_cfg["region_name"], api_timeout=5)
    )
    with pytest.raises(CloudError) as info:
        client.list_servers("any")
    text = str(info.value) + "".join(traceback.format_exception(info.value))
    assert info.value.status == 401
    assert auth["password"] not in text
    assert cloud_cfg["auth"]["password"] not in text
    client.close()


def test_unknown_cloud_is_a_cloud_error(env: dict[str, str]) -> None:
    with pytest.raises(CloudError, match="connect"):
        CloudClient.connect(CloudOptions(cloud="no-such-cloud"))
