# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The option names of the openstack.cloud collection, so that existing vars carry over.
    DOCUMENTATION = r"""
options:
  cloud:
    description:
      - Name of a cloud in C(clouds.yaml), or a dict with the cloud's configuration.
      - If not set, the environment variable E(OS_CLOUD) is used; E(OS_CLIENT_CONFIG_FILE) names the C(clouds.yaml) to read.
    type: raw
  auth:
    description:
      - Authentication parameters (for example C(auth_url), C(username), C(password), C(project_name),
        C(user_domain_name), C(project_domain_name), or C(application_credential_id) and C(application_credential_secret)).
      - Overrides what O(cloud) provides.
    type: dict
  auth_type:
    description:
      - The authentication plugin, for example C(password) or C(v3applicationcredential).
    type: str
  region_name:
    description:
      - Name of the region.
    type: str
  interface:
    description:
      - The endpoint interface to use from the service catalog.
    type: str
    choices: [admin, internal, public]
    default: public
    aliases: [endpoint_type]
  validate_certs:
    description:
      - Whether to verify TLS certificates of the OpenStack APIs.
      - When not set, the value from C(clouds.yaml) or openstacksdk's default (V(true)) applies.
    type: bool
    aliases: [verify]
  ca_cert:
    description:
      - A path to a CA certificate bundle for verifying the OpenStack APIs.
    type: str
    aliases: [cacert]
  api_timeout:
    description:
      - Seconds after which one OpenStack API request is abandoned.
    type: int
    default: 60
requirements:
  - openstacksdk >= 4.14.0
"""
