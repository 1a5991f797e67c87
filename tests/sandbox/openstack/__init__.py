"""The simulated OpenStack cloud: Keystone, Nova, Glance and Neutron on their own loopback ports.

`OpenStackSim(world)` builds the shared model and the four services and registers itself
as `world.services["openstack"]`, which is what the GitHub simulator's runner VMs and the
control API use:

- `on_server_active`: callbacks run under `world.lock` with a server record when it turns ACTIVE;
- `on_server_deleted`: the same when a delete is accepted (the guest, and a runner in it, stop then);
- `power_off(server_id)`: what the runner does when it exits (ACTIVE -> SHUTOFF);
- `servers_snapshot()` and `state()`: JSON-able views for `GET /state`.
"""

from __future__ import annotations

import typing as t

from tests.sandbox.httpserver import Service
from tests.sandbox.openstack.compute import Compute
from tests.sandbox.openstack.glance import GlanceService, Images
from tests.sandbox.openstack.identity import REGION, Credentials, Identity, KeystoneService
from tests.sandbox.openstack.neutron import Networks, NeutronService
from tests.sandbox.openstack.nova import NovaService

if t.TYPE_CHECKING:
    from tests.sandbox.world import World

CLOUD = "sandbox"
APPCRED_CLOUD = "sandbox-appcred"
ADMIN_CLOUD = "sandbox-admin"


class OpenStackSim:
    def __init__(self, world: World) -> None:
        self.world = world
        self.identity = Identity(world)
        self.images = Images(world, self.identity.creds.project_id)
        self.networks = Networks(world, self.identity.creds.project_id)
        self.compute = Compute(world, self.identity, self.images, self.networks)
        self.keystone = KeystoneService(world, self.identity)
        self.nova = NovaService(world, self.identity, self.compute)
        self.glance = GlanceService(world, self.identity, self.images)
        self.neutron = NeutronService(world, self.identity, self.networks)
        world.services["openstack"] = self

    @property
    def creds(self) -> Credentials:
        return self.identity.creds

    @property
    def on_server_active(self) -> list[t.Callable[[dict[str, t.Any]], None]]:
        return self.compute.on_server_active

    @property
    def on_server_deleted(self) -> list[t.Callable[[dict[str, t.Any]], None]]:
        return self.compute.on_server_deleted

    def services(self) -> list[Service]:
        return [self.keystone, self.nova, self.glance, self.neutron]

    def started(self) -> None:
        """Call once every service listens: the catalog points at their URLs."""
        self.identity.endpoints.update(
            identity=self.keystone.base_url,
            compute=self.nova.base_url,
            image=self.glance.base_url,
            network=self.neutron.base_url,
        )

    # Contract with the runner VMs and the control API ------------------------------
    def power_off(self, server_id: str) -> None:
        with self.world.lock:
            self.compute.power_off(server_id)

    def servers_snapshot(self) -> list[dict[str, t.Any]]:
        with self.world.lock:
            return [s.snapshot() for s in self.compute.servers.values()]

    def state(self) -> dict[str, t.Any]:
        with self.world.lock:
            return {
                "servers": [s.snapshot() for s in self.compute.servers.values()],
                "compute_host": self.compute.stats(),
                "usage": self.compute.usage(),
                "keypairs": sorted(self.compute.keypairs),
                "images": [{"id": i["id"], "name": i["name"]} for i in self.images.images.values()],
                "networks": [{"id": n["id"], "name": n["name"]} for n in self.networks.records["networks"].values()],
                "security_groups": [
                    {"id": g["id"], "name": g["name"]} for g in self.networks.records["security-groups"].values()
                ],
                "endpoints": dict(self.identity.endpoints),
            }

    # Client configuration ------------------------------------------------------------
    def clouds(self) -> dict[str, t.Any]:
        """The clouds.yaml content: the member with a password and with an application credential, the admin."""
        c = self.creds
        auth_url = self.identity.public_url
        common = {"region_name": REGION, "interface": "public", "identity_api_version": 3}
        return {
            "clouds": {
                CLOUD: {
                    "auth_type": "password",
                    "auth": {
                        "auth_url": auth_url,
                        "username": c.username,
                        "password": c.password,
                        "project_name": c.project_name,
                        "user_domain_name": "Default",
                        "project_domain_name": "Default",
                    },
                    **common,
                },
                ADMIN_CLOUD: {
                    "auth_type": "password",
                    "auth": {
                        "auth_url": auth_url,
                        "username": c.admin_username,
                        "password": c.admin_password,
                        "project_name": c.project_name,
                        "user_domain_name": "Default",
                        "project_domain_name": "Default",
                    },
                    **common,
                },
                APPCRED_CLOUD: {
                    "auth_type": "v3applicationcredential",
                    "auth": {
                        "auth_url": auth_url,
                        "application_credential_id": c.app_cred_id,
                        "application_credential_secret": c.app_cred_secret,
                    },
                    **common,
                },
            }
        }
