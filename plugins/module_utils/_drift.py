# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drift: a short, stable hash of the part of a pool's spec that shapes its runners.

Each VM records the hash of the spec it was created from (``ghr_spec`` metadata). A VM
whose hash differs from the pool's current one is *outdated*: its runner has labels,
a flavor, an image, networks, security groups, a key or user data the pool no longer
asks for. VMs that record no hash (created before it was recorded) are never outdated:
what they were created from is unknown.

The hash covers exactly those fields: sizes (``min_idle``, ``max_runners``, the
per-run limits), timings, backoffs, the pool's name and its scope leave it unchanged
(a pool moved to another scope is reported as ``scope_changed`` instead). It is the
SHA-256 of a canonical JSON text, so it is the same on every host, run and Python version.
"""

from __future__ import annotations

import hashlib
import json
import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import PoolSpec

#: Hex digits kept of the SHA-256: short enough for a metadata value, long enough never to collide by chance.
SPEC_HASH_LENGTH = 16
# Bumped when the fields below change meaning; every hash then changes (and idle runners are replaced).
_VERSION = 1


def spec_fields(pool: PoolSpec) -> t.Dict[str, t.Any]:
    """The fields of `pool` that shape a runner, as plain data in a canonical order."""
    user_data = pool.user_data
    return {
        "version": _VERSION,
        # The order of labels and security groups does not change a runner; that of networks does (the first NIC).
        "labels": sorted(pool.labels),
        "runner_group": pool.runner_group,
        "flavor": pool.flavor,
        "image": pool.image,
        "networks": list(pool.networks),
        "security_groups": sorted(pool.security_groups),
        "key_name": pool.key_name,
        "boot_from_volume": pool.boot_from_volume,
        "volume_size": pool.volume_size,
        "availability_zone": pool.availability_zone,
        "user_data": {
            "extra_env": dict(sorted(user_data.extra_env.items())),
            "pre_job_script": user_data.pre_job_script,
            "http_proxy": user_data.http_proxy,
            "https_proxy": user_data.https_proxy,
            "no_proxy": user_data.no_proxy,
            "runner_user": user_data.runner_user,
            "runner": {
                "directory": user_data.runner.directory,
                "tarball_url": user_data.runner.tarball_url,
                "tarball_sha256": user_data.runner.tarball_sha256,
            },
        },
    }


def spec_hash(pool: PoolSpec) -> str:
    """The hash of the fields of `pool` that shape a runner (`SPEC_HASH_LENGTH` lower-case hex digits)."""
    text = json.dumps(spec_fields(pool), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:SPEC_HASH_LENGTH]
