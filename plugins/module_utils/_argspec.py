# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs shared by the modules (plain dicts; the docs live in plugins/doc_fragments).

Ansible checks the types; `_config.parse_pool` checks everything else and names the bad field.
"""

from __future__ import annotations

import typing as t

ArgSpec = t.Dict[str, t.Dict[str, t.Any]]


def _env(*names: str) -> t.Tuple[t.Any, ...]:
    # Resolved to ansible.module_utils.basic.env_fallback by the module base (no Ansible import here).
    return ("env", list(names))


GITHUB_AUTH: ArgSpec = {
    "github_api_url": {"type": "str", "default": "https://api.github.com", "fallback": _env("GITHUB_API_URL")},
    "github_token": {"type": "str", "no_log": True, "fallback": _env("GITHUB_TOKEN")},
    "github_app_id": {"type": "str", "fallback": _env("GITHUB_APP_ID")},
    "github_app_private_key": {"type": "str", "no_log": True, "fallback": _env("GITHUB_APP_PRIVATE_KEY")},
    "github_app_private_key_path": {"type": "path", "fallback": _env("GITHUB_APP_PRIVATE_KEY_FILE")},
    "github_app_installation_id": {"type": "int", "fallback": _env("GITHUB_APP_INSTALLATION_ID")},
    "github_timeout": {"type": "float", "default": 30.0},
    "github_max_rate_limit_wait": {"type": "float", "default": 60.0},
}

OPENSTACK_AUTH: ArgSpec = {
    "cloud": {"type": "raw", "fallback": _env("OS_CLOUD")},
    "auth": {"type": "dict", "no_log": True},
    "auth_type": {"type": "str"},
    "region_name": {"type": "str"},
    "interface": {
        "type": "str",
        "default": "public",
        "choices": ["admin", "internal", "public"],
        "aliases": ["endpoint_type"],
    },
    "validate_certs": {"type": "bool", "aliases": ["verify"]},
    "ca_cert": {"type": "str", "aliases": ["cacert"]},
    "api_timeout": {"type": "int", "default": 60},
}

CONTROLLER: ArgSpec = {
    "controller_id": {"type": "str", "required": True},
}

LOCKING: ArgSpec = {
    "lock_dir": {"type": "path"},
    "mongodb_uri": {"type": "str", "no_log": True, "fallback": _env("MONGODB_URI")},
    "mongodb_database": {"type": "str", "default": "github_runners"},
    "lock_timeout": {"type": "float", "default": 300.0},
}

_DURATION = {"type": "raw"}

POOL: ArgSpec = {
    "name": {"type": "str", "required": True},
    "repository": {"type": "str"},
    "organization": {"type": "str"},
    "enterprise": {"type": "str"},
    "labels": {"type": "list", "elements": "str", "required": True},
    "runner_group": {"type": "str"},
    "min_idle": {"type": "int", "default": 0},
    "max_runners": {"type": "int", "default": 10},
    "flavor": {"type": "str", "required": True},
    "image": {"type": "str", "required": True},
    "networks": {"type": "list", "elements": "str", "required": True},
    "security_groups": {"type": "list", "elements": "str", "default": []},
    "key_name": {"type": "str", "no_log": False},
    "boot_from_volume": {"type": "bool", "default": False},
    "volume_size": {"type": "int"},
    "availability_zone": {"type": "str"},
    "user_data": {
        "type": "dict",
        "options": {
            "extra_env": {"type": "dict", "default": {}},
            "pre_job_script": {"type": "str"},
            "http_proxy": {"type": "str"},
            "https_proxy": {"type": "str"},
            "no_proxy": {"type": "str"},
            "runner_user": {"type": "str", "default": "runner"},
            "runner": {
                "type": "dict",
                "options": {
                    "directory": {"type": "str", "default": "/opt/actions-runner"},
                    "tarball_url": {"type": "str"},
                    "tarball_sha256": {"type": "str"},
                },
            },
        },
    },
    "bootstrap_timeout": {**_DURATION, "default": "15m"},
    "offline_grace": {**_DURATION, "default": "5m"},
    "registration_grace": {**_DURATION, "default": "2m"},
    "max_lifetime": {**_DURATION, "default": "24h"},
    "create_concurrency": {"type": "int", "default": 4},
}

POOLS: ArgSpec = {
    "pools": {"type": "list", "elements": "dict", "required": True, "options": POOL},
}
