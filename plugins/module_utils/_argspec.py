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
    # No Ansible fallbacks for the credentials: which kind applies depends on what the task
    # gives explicitly (see `github_credentials`), so the environment is read there.
    "github_token": {"type": "str", "no_log": True},
    "github_app_id": {"type": "str"},
    "github_app_private_key": {"type": "str", "no_log": True},
    "github_app_private_key_path": {"type": "path"},
    "github_app_installation_id": {"type": "int"},
    "github_timeout": {"type": "float", "default": 30.0},
    "github_max_rate_limit_wait": {"type": "float", "default": 60.0},
    "github_write_burst": {"type": "int", "default": 80},
    "github_writes_per_minute": {"type": "float", "default": 80.0},
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
    "lock_ttl": {"type": "float", "default": 120.0},
}

JOB_QUEUE: ArgSpec = {
    "mongodb_uri": {"type": "str", "required": True, "no_log": True, "fallback": _env("MONGODB_URI")},
    "mongodb_database": {"type": "str", "default": "github_runners"},
    "jobs_collection": {"type": "str", "default": "jobs"},
    "mongodb_timeout": {"type": "float", "default": 5.0},
}

_DURATION = {"type": "raw"}

#: Credential options and the environment variables that stand in for them.
GITHUB_CREDENTIAL_ENV = {
    "github_token": "GITHUB_TOKEN",
    "github_app_id": "GITHUB_APP_ID",
    "github_app_private_key": "GITHUB_APP_PRIVATE_KEY",
    "github_app_private_key_path": "GITHUB_APP_PRIVATE_KEY_FILE",
    "github_app_installation_id": "GITHUB_APP_INSTALLATION_ID",
}
_APP_OPTIONS = ("github_app_id", "github_app_private_key", "github_app_private_key_path", "github_app_installation_id")


def github_credentials(params: t.Mapping[str, t.Any], environ: t.Mapping[str, str]) -> t.Dict[str, t.Any]:
    """The credential options in force: what the task gives, else the environment.

    A task that names a token or any App option uses that kind of credential (the rest of
    an App's options may come from the environment); otherwise GITHUB_TOKEN wins over the
    GITHUB_APP_* variables, so an environment holding both does not make a task fail.
    """
    given = {k: params.get(k) for k in GITHUB_CREDENTIAL_ENV if params.get(k) not in (None, "")}
    from_env = {k: environ[v] for k, v in GITHUB_CREDENTIAL_ENV.items() if environ.get(v)}
    if "github_token" in given:
        return {"github_token": given["github_token"]}
    if any(k in given for k in _APP_OPTIONS) or "github_token" not in from_env:
        app: t.Dict[str, t.Any] = {k: from_env[k] for k in _APP_OPTIONS if k in from_env}
        if "github_app_private_key" in given or "github_app_private_key_path" in given:
            app.pop("github_app_private_key", None)
            app.pop("github_app_private_key_path", None)
        app.update(given)
        if "github_app_private_key" in app and "github_app_private_key_path" in app:
            del app["github_app_private_key_path"]  # the key text from the environment wins over its file
        return app
    return {"github_token": from_env["github_token"]}


POOL: ArgSpec = {
    "name": {"type": "str", "required": True},
    "repository": {"type": "str"},
    "organization": {"type": "str"},
    "enterprise": {"type": "str"},
    # Not "str": Ansible would turn 7, true or a mapping into text; the core refuses them, naming the label.
    "labels": {"type": "list", "elements": "raw", "required": True},
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
    "max_create_per_run": {"type": "int", "default": 20},
    "max_replace_per_run": {"type": "int", "default": 5},
    "creation_backoff": {**_DURATION, "default": "1m"},
    "creation_backoff_max": {**_DURATION, "default": "30m"},
}

POOLS: ArgSpec = {
    "pools": {"type": "list", "elements": "dict", "required": True, "options": POOL},
}
