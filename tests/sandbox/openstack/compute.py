"""Nova's domain: flavors, keypairs, servers and their life cycle, quotas.

HTTP shapes live in nova.py; this module raises `HttpError` with Nova's messages and
the Nova service turns them into Nova's error bodies.

A server's life, as Nova 34 runs it (checked against it with the fake virt driver):

- POST checks the quota against the servers already in the cell database, then answers
  202. For `openstack.schedule_delay` the server is only a build request (BUILD,
  task_state scheduling) that no quota check counts. Then the conductor puts it in the
  cell and rechecks the quota counting every server created so far, the racing ones
  included: over quota, it goes to ERROR with the fault (code 413) "Quota exceeded for
  instances: Requested 1, but already used Q of Q instances". So concurrent creates
  past the quota all pass the POST and end in ERROR; only serial ones get the 403.
- A flavor no host can take (`m1.unschedulable`) ends in ERROR with "No valid host was
  found. " (Nova's text, trailing space) when it is scheduled. ERROR servers count
  towards the quota until they are deleted.
- Then the compute host builds it (BUILD -> ACTIVE, or ERROR with an injected fault).
- DELETE keeps the status and sets task_state deleting while the host works on it; then
  the server lists as DELETED for `openstack.deleted_linger` seconds, then is 404. A
  server that never reached a host (ERROR at scheduling) is gone at once.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import secrets
import typing as t

from tests.sandbox.httpserver import HttpError
from tests.sandbox.openstack.common import isotime, new_id
from tests.sandbox.openstack.host import ComputeHost, Operation
from tests.sandbox.openstack.nova_schema import is_true

if t.TYPE_CHECKING:
    from tests.sandbox.openstack.glance import Images
    from tests.sandbox.openstack.identity import Identity
    from tests.sandbox.openstack.neutron import Networks
    from tests.sandbox.world import World

CONFIG_DEFAULTS: dict[str, t.Any] = {
    "openstack.boot_delay": 0.3,  # seconds a build occupies the compute host
    "openstack.delete_delay": 0.1,  # seconds a delete occupies it (the server shows DELETED meanwhile)
    "openstack.compute_concurrency": 8,  # builds + deletes the host runs at once; the rest queue
    "openstack.schedule_delay": 0.05,  # seconds from POST until the server is in the cell (quota recheck)
    "openstack.deleted_linger": 0.05,  # seconds a deleted server still lists as DELETED before 404
    "openstack.max_limit": 1000,  # Nova's [api] max_limit: page size cap of list calls
    "openstack.quota.instances": 200,
    "openstack.quota.cores": 400,
    "openstack.quota.ram": 819200,  # MiB
    "openstack.quota.metadata_items": 128,
    "openstack.quota.key_pairs": 100,
}
AVAILABILITY_ZONE = "nova"
MAX_TAGS = 50
NO_VALID_HOST = "No valid host was found. "  # sic: Nova's message for NoValidHost(reason="")


@dataclasses.dataclass(frozen=True)
class Flavor:
    id: str
    name: str
    vcpus: int
    ram: int
    disk: int
    ephemeral: int = 0
    swap: int = 0
    is_public: bool = True
    description: str | None = None
    schedulable: bool = True  # False: asks for what no host has (NoValidHost)


DEFAULT_FLAVORS = (
    Flavor("1", "m1.tiny", 1, 512, 1),
    Flavor("2", "m1.small", 1, 2048, 20),
    Flavor("3", "m1.medium", 2, 4096, 40),
    Flavor("4", "m1.large", 4, 8192, 80),
    Flavor("5", "m1.xlarge", 8, 16384, 160),
    # Its extra spec asks for a resource no compute node provides: every boot ends in NoValidHost.
    Flavor("90", "m1.unschedulable", 1, 512, 1, schedulable=False),
)


@dataclasses.dataclass(eq=False)
class Server:
    id: str
    name: str
    flavor: Flavor
    image_id: str | None  # None when booted from a volume
    network_ids: list[str]
    security_groups: list[str]  # as requested (names or ids)
    key_name: str | None
    user_data: str | None  # decoded
    metadata: dict[str, str]
    tags: list[str]
    config_drive: bool
    description: str | None
    disk_config: str
    admin_pass: str
    block_devices: list[dict[str, t.Any]]
    seq: int
    created: float
    updated: float
    user_id: str
    project_id: str
    status: str = "BUILD"
    vm_state: str = "building"
    task_state: str | None = "scheduling"
    power_state: int = 0
    launched_at: float | None = None
    fault: dict[str, t.Any] | None = None
    fail_message: str | None = None  # set by an injected server_error fault
    addresses: dict[str, list[dict[str, t.Any]]] = dataclasses.field(default_factory=dict)
    build_op: Operation | None = None
    in_cell: bool = False  # past scheduling: counted by the quota check at POST
    on_host: bool = False  # a compute host took it (a delete then needs the host)
    reservation_id: str = dataclasses.field(default_factory=lambda: "r-" + secrets.token_hex(4))

    @property
    def deleting(self) -> bool:
        return self.task_state == "deleting" or self.status == "DELETED"

    def record(self) -> dict[str, t.Any]:
        """What on_server_active subscribers get (includes the decoded user data)."""
        return {**self.snapshot(), "user_data": self.user_data}

    def snapshot(self) -> dict[str, t.Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "task_state": self.task_state,
            "flavor": self.flavor.name,
            "image_id": self.image_id,
            "networks": list(self.network_ids),
            "security_groups": list(self.security_groups),
            "key_name": self.key_name,
            "metadata": dict(self.metadata),
            "tags": list(self.tags),
            "created": self.created,
            "updated": self.updated,
            "launched_at": self.launched_at,
            "fault": dict(self.fault) if self.fault else None,
        }


class Compute:
    """Nova's state (hold world.lock when calling in)."""

    def __init__(self, world: World, identity: Identity, images: Images, networks: Networks) -> None:
        self.world = world
        self.identity = identity
        self.images = images
        self.networks = networks
        for key, value in CONFIG_DEFAULTS.items():
            world.config.setdefault(key, value)
        self.flavors = {f.id: f for f in DEFAULT_FLAVORS}
        self.keypairs: dict[str, dict[str, t.Any]] = {}
        self.servers: dict[str, Server] = {}  # creation order
        self.gone: dict[str, int] = {}  # deleted id -> seq, so a marker past a deleted server still pages
        self._scheduling: list[tuple[float, Server]] = []  # (due, server), in creation order
        self._lingering: list[tuple[float, Server]] = []  # (gone at, server) listed as DELETED until then
        self._seq = 0
        self.on_server_active: list[t.Callable[[dict[str, t.Any]], None]] = []
        self.on_server_deleted: list[t.Callable[[dict[str, t.Any]], None]] = []
        self.host = ComputeHost(lambda: int(world.config["openstack.compute_concurrency"]))
        world.add_ticker(self.tick)

    # Look-ups ------------------------------------------------------------------------
    def server(self, server_id: str) -> Server:
        server = self.servers.get(server_id)
        if server is None:
            raise HttpError(404, f"Instance {server_id} could not be found.")
        return server

    def flavor(self, ref: str) -> Flavor:
        flavor_id = ref.rstrip("/").rsplit("/", 1)[-1]
        flavor = self.flavors.get(flavor_id)
        if flavor is None:
            raise HttpError(400, f"Flavor {flavor_id} could not be found.")
        return flavor

    def quota(self, name: str) -> int:
        return int(self.world.config[f"openstack.quota.{name}"])

    def usage(self, *, with_build_requests: bool = False) -> dict[str, int]:
        """What the servers in the cell use (not yet deleted); with the build requests not yet scheduled too."""
        servers = [s for s in self.servers.values() if s.status != "DELETED" and (s.in_cell or with_build_requests)]
        return {
            "instances": len(servers),
            "cores": sum(s.flavor.vcpus for s in servers),
            "ram": sum(s.flavor.ram for s in servers),
        }

    # Create --------------------------------------------------------------------------
    def _check_quota(self, name: str, flavor: Flavor) -> None:
        """The API's check: against the servers in the cell (build requests not yet scheduled are not counted)."""
        fault = self.world.faults.take("quota_exceeded", name=name)
        used = self.usage()
        if fault is not None:
            raise HttpError(
                403,
                fault.message
                or f"Quota exceeded for instances: Requested 1, but already used {used['instances']} of {used['instances']} instances",
                headers={"Retry-After": "0"},
            )
        message = self._over_quota(flavor, used, recheck=False)
        if message is not None:
            raise HttpError(403, message, headers={"Retry-After": "0"})

    def _over_quota(self, flavor: Flavor, used: dict[str, int], *, recheck: bool) -> str | None:
        """Nova's message when one more server of `flavor` is over quota, else None.

        The recheck counts the new server in `used` already (delta 0) and, as Nova's does,
        words the usage as the limit: "already used 3 of 3 instances".
        """
        requested = {"instances": 1, "cores": flavor.vcpus, "ram": flavor.ram}
        overs = sorted(
            r for r, n in requested.items() if self.quota(r) >= 0 and used[r] + (0 if recheck else n) > self.quota(r)
        )
        if not overs:
            return None
        joined = ", ".join(overs)
        shown = {r: self.quota(r) if recheck else used[r] for r in overs}
        return (
            f"Quota exceeded for {joined}: Requested {', '.join(str(requested[r]) for r in overs)},"
            f" but already used {', '.join(str(shown[r]) for r in overs)}"
            f" of {', '.join(str(self.quota(r)) for r in overs)} {joined}"
        )

    def _resolve_networks(self, requested: t.Any) -> tuple[list[str], list[str]]:
        """Network ids to plug and existing port ids to bind."""
        if requested == "none":
            return [], []
        if requested is None or requested == "auto":
            nets = [n for n in self.networks.records["networks"].values() if not n["router:external"]]
            if len(nets) > 1:
                raise HttpError(409, "Multiple possible networks found, use a Network ID to be more specific.")
            if not nets:
                raise HttpError(
                    400, f"Unable to automatically allocate a network for project {self.identity.creds.project_id}"
                )
            return [nets[0]["id"]], []
        net_ids, port_ids = [], []
        for item in requested:
            if item.get("port"):
                port = self.networks.records["ports"].get(item["port"])
                if port is None:
                    raise HttpError(400, f"Port id {item['port']} could not be found.")
                if port["device_id"]:
                    raise HttpError(409, f"Port {item['port']} is still in use.")
                port_ids.append(port["id"])
                continue
            if item.get("uuid") not in self.networks.records["networks"]:
                raise HttpError(400, f"Network {item.get('uuid')} could not be found.")
            net_ids.append(item["uuid"])
        return net_ids, port_ids

    def _resolve_security_groups(self, names: list[str]) -> list[str]:
        ids = []
        for name in names:
            groups = self.networks.security_groups_named(name)
            if not groups:
                raise HttpError(400, f"Security group {name} not found.")
            if len(groups) > 1:
                raise HttpError(
                    409, f"Multiple security_group matches found for name '{name}', use an ID to be more precise."
                )
            ids.append(groups[0]["id"])
        return ids

    def create(self, body: dict[str, t.Any], user_id: str) -> Server:
        """`body` is the schema-validated "server" object of POST /servers."""
        name = body["name"]
        flavor = self.flavor(str(body["flavorRef"]))
        block_devices = list(body.get("block_device_mapping_v2") or [])
        boots_from_volume = any(
            str(b.get("boot_index")) == "0" and b.get("destination_type") == "volume" for b in block_devices
        )
        image_ref = str(body.get("imageRef") or "")
        image_id: str | None = None
        if image_ref:
            image_id = image_ref.rstrip("/").rsplit("/", 1)[-1]
            image = self.images.get(image_id)
            if image is None:
                raise HttpError(400, f"Image {image_id} could not be found.")
            if image["status"] != "active":
                raise HttpError(400, f"Image {image_id} is not active.")
        elif not boots_from_volume:
            raise HttpError(
                400,
                "Block Device Mapping is Invalid: Boot sequence for the instance and image/block device mapping combination is not valid.",
            )
        key_name = body.get("key_name")
        if key_name is not None and key_name not in self.keypairs:
            raise HttpError(400, "Invalid key_name provided.")
        zone = body.get("availability_zone")
        if zone and zone.split(":", 1)[0] != AVAILABILITY_ZONE:
            raise HttpError(400, "The requested availability zone is not available")
        net_ids, port_ids = self._resolve_networks(body.get("networks"))
        sg_ids = self._resolve_security_groups(
            [g["name"] for g in body.get("security_groups") or [{"name": "default"}]]
        )
        sg_names = [self.networks.records["security-groups"][i]["name"] for i in sg_ids]
        metadata = dict(body.get("metadata") or {})
        max_meta = self.quota("metadata_items")
        if 0 <= max_meta < len(metadata):
            raise HttpError(403, f"Maximum number of metadata items exceeds {max_meta}")
        self._check_quota(name, flavor)

        now = self.world.now()
        self._seq += 1
        user_data = body.get("user_data")
        server = Server(
            id=new_id(),
            name=name,
            flavor=flavor,
            image_id=image_id,
            network_ids=net_ids,
            security_groups=sg_names if (net_ids or port_ids) else [],
            key_name=key_name,
            user_data=base64.b64decode(user_data).decode("utf-8", "replace") if user_data else None,
            metadata=metadata,
            tags=list(dict.fromkeys(body.get("tags") or [])),
            config_drive=is_true(body.get("config_drive")),
            description=body.get("description"),
            disk_config=body.get("OS-DCF:diskConfig", "MANUAL"),
            admin_pass=body.get("adminPass") or secrets.token_urlsafe(9),
            block_devices=block_devices,
            seq=self._seq,
            created=now,
            updated=now,
            user_id=user_id,
            project_id=self.identity.creds.project_id,
        )
        for net_id in net_ids:
            self.networks.create_port(
                {
                    "network_id": net_id,
                    "device_id": server.id,
                    "device_owner": "compute:nova",
                    "security_groups": sg_ids,
                }
            )
        for port_id in port_ids:
            port = self.networks.records["ports"][port_id]
            port.update(device_id=server.id, device_owner="compute:nova")
            self.networks.ports_by_device.setdefault(server.id, []).append(port_id)
            server.network_ids.append(port["network_id"])
        fault = self.world.faults.take("server_error", name=name)
        if fault is not None:
            server.fail_message = fault.message or NO_VALID_HOST
        self.servers[server.id] = server
        self._scheduling.append((now + float(self.world.config["openstack.schedule_delay"]), server))
        self.world.events.add("server_create", id=server.id, name=name)
        return server

    def stats(self) -> dict[str, int]:
        """Work in progress: build requests not yet scheduled, and the host's running and waiting operations."""
        return {"scheduling": len(self._scheduling), **self.host.stats()}

    def tick(self, now: float) -> None:
        while self._scheduling and self._scheduling[0][0] <= now:
            due, server = self._scheduling.pop(0)
            if self.servers.get(server.id) is server and not server.deleting:
                self._schedule(server, due)
        while self._lingering and self._lingering[0][0] <= now:
            self._gone(self._lingering.pop(0)[1])
        self.host.tick(now)

    def _schedule(self, server: Server, ts: float) -> None:
        """The conductor: into the cell, quota recheck, then a host (or NoValidHost)."""
        server.in_cell = True
        over = self._over_quota(server.flavor, self.usage(with_build_requests=True), recheck=True)
        failure = over or (None if server.flavor.schedulable else NO_VALID_HOST)
        if failure is not None:
            server.updated = ts
            server.status, server.vm_state, server.task_state = "ERROR", "error", None
            server.fault = {"code": 413 if over else 500, "created": isotime(ts), "message": failure}
            self.networks.release_device(server.id)
            self.world.events.add("server_error", id=server.id, name=server.name, message=failure)
            return
        server.on_host = True
        server.task_state = "spawning"
        server.build_op = Operation(
            "build",
            server.id,
            lambda: float(self.world.config["openstack.boot_delay"]),
            lambda done: self._built(server, done),
        )
        self.host.submit(server.build_op, ts)

    def _built(self, server: Server, ts: float) -> None:
        if self.servers.get(server.id) is not server or server.status != "BUILD" or server.deleting:
            return
        server.updated = ts
        server.task_state = None
        if server.fail_message is not None:
            server.status, server.vm_state = "ERROR", "error"
            server.fault = {"code": 500, "created": isotime(ts), "message": server.fail_message}
            self.networks.release_device(server.id)
            self.world.events.add("server_error", id=server.id, name=server.name, message=server.fail_message)
            return
        server.status, server.vm_state, server.power_state = "ACTIVE", "active", 1
        server.launched_at = ts
        for port in self.networks.device_ports(server.id):
            port["status"] = "ACTIVE"
            net_name = self.networks.records["networks"][port["network_id"]]["name"]
            server.addresses.setdefault(net_name, []).extend(
                {
                    "version": 4,
                    "addr": ip["ip_address"],
                    "OS-EXT-IPS:type": "fixed",
                    "OS-EXT-IPS-MAC:mac_addr": port["mac_address"],
                }
                for ip in port["fixed_ips"]
            )
        self.world.events.add("server_active", id=server.id, name=server.name)
        self._notify(self.on_server_active, server, "on_server_active")

    def _notify(self, callbacks: list[t.Callable[[dict[str, t.Any]], None]], server: Server, where: str) -> None:
        for callback in list(callbacks):
            try:
                callback(server.record())
            except Exception as exc:  # a subscriber's bug must not stop the compute host
                self.world.events.add("sandbox_error", where=where, error=f"{type(exc).__name__}: {exc}")

    # Delete and power ----------------------------------------------------------------
    def delete(self, server: Server) -> None:
        if server.deleting:
            return  # a second delete while the first runs is accepted and changes nothing
        github = self.world.services.get("github")
        lookup = getattr(github, "runner_busy", None)
        busy = lookup(server.id) if callable(lookup) else None
        self.world.events.add("server_delete", id=server.id, name=server.name, status=server.status, runner_busy=busy)
        if server.build_op is not None:
            server.build_op.cancelled = True
        server.updated = self.world.now()
        self._notify(self.on_server_deleted, server, "on_server_deleted")  # the guest and its runner die now
        if not server.on_host:
            self._gone(server)  # never reached a host: nothing to tear down
            return
        server.task_state = "deleting"  # the status stays what it was until the host is done
        self.host.submit(
            Operation(
                "delete",
                server.id,
                lambda: float(self.world.config["openstack.delete_delay"]),
                lambda ts: self._deleted(server, ts),
            ),
            server.updated,
        )

    def _deleted(self, server: Server, ts: float) -> None:
        """The host is done: DELETED in listings for a moment, then gone."""
        if self.servers.get(server.id) is not server:
            return
        server.status, server.vm_state, server.task_state, server.power_state = "DELETED", "deleted", None, 0
        server.updated = ts
        self.networks.release_device(server.id)
        self._lingering.append((ts + float(self.world.config["openstack.deleted_linger"]), server))

    def _gone(self, server: Server) -> None:
        if self.servers.pop(server.id, None) is not None:
            self.gone[server.id] = server.seq
            self.networks.release_device(server.id)

    def power_off(self, server_id: str) -> None:
        server = self.servers.get(server_id)
        if server is None or server.status != "ACTIVE" or server.task_state is not None:
            return
        server.status, server.vm_state, server.power_state = "SHUTOFF", "stopped", 4
        server.updated = self.world.now()
        self.world.events.add("server_power_off", id=server.id, name=server.name)

    def reset_state(self, server: Server, state: str) -> None:
        """os-resetState: the admin sets vm_state (and so the status); Nova records no fault."""
        server.status, server.vm_state = ("ERROR", "error") if state == "error" else ("ACTIVE", "active")
        server.task_state = None
        server.updated = self.world.now()

    def power_on(self, server_id: str) -> None:
        server = self.server(server_id)
        if server.status == "SHUTOFF":
            server.status, server.vm_state, server.power_state = "ACTIVE", "active", 1
            server.updated = self.world.now()

    # Keypairs ------------------------------------------------------------------------
    def add_keypair(self, name: str, public_key: str, key_type: str, user_id: str) -> dict[str, t.Any]:
        if name in self.keypairs:
            raise HttpError(409, f"Key pair '{name}' already exists.")
        if 0 <= self.quota("key_pairs") <= len(self.keypairs):
            raise HttpError(403, "Quota exceeded, too many key pairs.")
        parts = public_key.split()
        try:
            blob = base64.b64decode(parts[1], validate=True) if len(parts) >= 2 else b""
        except ValueError:
            blob = b""
        if not blob:
            raise HttpError(400, "Keypair data is invalid: failed to generate fingerprint")
        digest = hashlib.md5(blob).hexdigest()
        keypair = {
            "name": name,
            "public_key": public_key,
            "fingerprint": ":".join(digest[i : i + 2] for i in range(0, 32, 2)),
            "type": key_type,
            "user_id": user_id,
            "id": len(self.keypairs) + 1,
            "created_at": isotime(self.world.now()).rstrip("Z") + ".000000",
            "deleted": False,
            "deleted_at": None,
            "updated_at": None,
        }
        self.keypairs[name] = keypair
        return keypair

    def delete_keypair(self, name: str) -> None:
        if self.keypairs.pop(name, None) is None:
            raise HttpError(404, f"Keypair {name} not found for user {self.identity.creds.user_id}")

    # Listing -------------------------------------------------------------------------
    def list_servers(self, match: t.Callable[[Server], bool], marker: str | None, limit: int) -> list[Server]:
        """Newest first (Nova's default sort: created_at desc), after `marker`, at most `limit`."""
        after = None
        if marker is not None:
            after = self.servers[marker].seq if marker in self.servers else self.gone.get(marker)
            if after is None:
                raise HttpError(400, f"marker [{marker}] not found")
        page: list[Server] = []
        if limit <= 0:
            return page
        for server in reversed(self.servers.values()):
            if after is not None and server.seq >= after:
                continue
            if match(server):
                page.append(server)
                if len(page) >= limit:
                    break
        return page
