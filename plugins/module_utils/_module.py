# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The base of every module: shared auth options, dependency checks, one error boundary.

The only module_utils file that imports Ansible; everything it calls is the core.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
import typing as t

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

from ansible_collections.selfhosted.github_runners.plugins.module_utils._argspec import (
    CONTROLLER,
    GITHUB_AUTH,
    LOCKING,
    OPENSTACK_AUTH,
    ArgSpec,
    github_credentials,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import parse_duration
from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import ConfigError, RunnerError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._github import (
    GITHUB_IMPORT_ERROR,
    HAS_GITHUB,
    GithubAuth,
    GithubClient,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._lock import FileLock, MongoLease, PoolLock
from ansible_collections.selfhosted.github_runners.plugins.module_utils._logging import protect_logs
from ansible_collections.selfhosted.github_runners.plugins.module_utils._openstack import (
    HAS_OPENSTACK,
    OPENSTACK_IMPORT_ERROR,
    CloudClient,
    CloudOptions,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._ratelimit import TokenBucket
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.backlog import Backlog
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.job import api_host_of
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.mongo import (
    HAS_PYMONGO,
    PYMONGO_IMPORT_ERROR,
    MongoAccess,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import JobQueue
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reconcile import LockFactory

DEFAULT_LOCK_DIR = "~/.cache/selfhosted.github_runners"
#: Below this a lease would be renewed every few seconds and a slow MongoDB could lose it.
MIN_LOCK_TTL = 10.0


def _resolve_fallbacks(spec: ArgSpec) -> ArgSpec:
    """Turn the core's ("env", [...]) markers into Ansible's env_fallback, recursively."""
    resolved: ArgSpec = {}
    for name, option in spec.items():
        option = dict(option)
        fallback = option.get("fallback")
        if fallback and fallback[0] == "env":
            option["fallback"] = (env_fallback, fallback[1])
        if "options" in option:
            option["options"] = _resolve_fallbacks(option["options"])
        resolved[name] = option
    return resolved


class RunnersModule:
    """AnsibleModule plus the collection's shared options and clients.

    A module declares only its own options; `github`, `openstack` and `locking` add the
    shared ones, documented by the doc fragments of the same names. `controller=False` leaves
    out `controller_id` (modules that touch no runner); `mongodb=True` requires pymongo.
    """

    def __init__(
        self,
        argument_spec: ArgSpec,
        *,
        github: bool = True,
        openstack: bool = True,
        locking: bool = False,
        controller: bool = True,
        mongodb: bool = False,
        supports_check_mode: bool = True,
        **kwargs: t.Any,
    ) -> None:
        protect_logs()  # before any library logs a request
        spec: ArgSpec = dict(CONTROLLER) if controller else {}
        mutually_exclusive: t.List[t.Sequence[str]] = list(kwargs.pop("mutually_exclusive", []))
        if github:
            spec.update(GITHUB_AUTH)
            mutually_exclusive.append(("github_token", "github_app_id"))
            mutually_exclusive.append(("github_app_private_key", "github_app_private_key_path"))
        if openstack:
            spec.update(OPENSTACK_AUTH)
        if locking:
            spec.update(LOCKING)
        spec.update(argument_spec)
        self.module = AnsibleModule(
            argument_spec=_resolve_fallbacks(spec),
            supports_check_mode=supports_check_mode,
            mutually_exclusive=mutually_exclusive,
            **kwargs,
        )
        self.params: t.Dict[str, t.Any] = self.module.params
        self.check_mode: bool = self.module.check_mode
        self._github: t.Optional[GithubClient] = None
        self._cloud: t.Optional[CloudClient] = None
        self._mongo: t.Optional[MongoAccess] = None
        self._requires(github=github, openstack=openstack, mongodb=mongodb)

    # Dependencies ------------------------------------------------------------
    def _requires(self, github: bool, openstack: bool, mongodb: bool = False) -> None:
        if mongodb and not HAS_PYMONGO:
            self.module.fail_json(msg=missing_required_lib("pymongo"), exception=PYMONGO_IMPORT_ERROR)
        if github and not HAS_GITHUB:
            self.module.fail_json(msg=missing_required_lib("PyGithub"), exception=GITHUB_IMPORT_ERROR)
        if openstack and not HAS_OPENSTACK:
            self.module.fail_json(msg=missing_required_lib("openstacksdk"), exception=OPENSTACK_IMPORT_ERROR)

    # Clients -----------------------------------------------------------------
    def github(self) -> GithubClient:
        if self._github is None:
            p = self.params
            creds = github_credentials(p, os.environ)
            key = creds.get("github_app_private_key")
            if not key and creds.get("github_app_private_key_path"):
                path = os.path.expanduser(creds["github_app_private_key_path"])
                try:
                    with open(path, encoding="utf-8") as fh:
                        key = fh.read()
                except OSError as exc:
                    raise ConfigError(
                        "github_app_private_key_path", f"cannot read the key file: {exc.strerror}"
                    ) from None
            secrets = [s for s in (key, creds.get("github_token")) if s]
            self.module.no_log_values.update(secrets)
            protect_logs(secrets)
            installation_id = creds.get("github_app_installation_id")
            try:
                installation = int(installation_id) if installation_id not in (None, "") else None
            except ValueError:
                raise ConfigError("github_app_installation_id", "must be an integer") from None
            auth = GithubAuth(
                token=creds.get("github_token"),
                app_id=creds.get("github_app_id"),
                private_key=key or None,
                installation_id=installation,
            )
            self._github = GithubClient(
                auth,
                api_url=p["github_api_url"],
                timeout=p["github_timeout"],
                max_rate_limit_wait=p["github_max_rate_limit_wait"],
                write_bucket=_write_bucket(p["github_write_burst"], p["github_writes_per_minute"]),
            )
        return self._github

    def cloud(self) -> CloudClient:
        if self._cloud is None:
            p = self.params
            self._cloud = CloudClient.connect(
                CloudOptions(
                    cloud=p.get("cloud"),
                    auth=p.get("auth"),
                    auth_type=p.get("auth_type"),
                    region_name=p.get("region_name"),
                    interface=p.get("interface"),
                    validate_certs=p.get("validate_certs"),
                    ca_cert=p.get("ca_cert"),
                    api_timeout=p.get("api_timeout"),
                )
            )
        return self._cloud

    def tell(self, message: str) -> None:
        """Write `message` to stderr now: people watching a run that hangs (-vvv, AWX) see it before the result."""
        # RuntimeError: a signal's message arriving while another is being written (a reentrant write).
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            sys.stderr.write(f"{message}\n")
            sys.stderr.flush()

    def _lock_wait(self, message: str) -> None:
        self.module.warn(message)  # also in the result when the wait ends in a failure
        self.tell(message)

    def locks(self, check: t.Optional[t.Callable[[], None]] = None) -> LockFactory:
        """A pool lock factory: a MongoDB lease when `mongodb_uri` is set, else a local file lock.

        A lock found held is reported (who holds it) in the warnings and on stderr at once;
        `check` is called between attempts and ends the wait when it raises (a stop request).
        """
        p = self.params
        timeout = float(p.get("lock_timeout") or 300.0)
        prefix = f"{p.get('controller_id')}-"

        def what(key: str) -> str:
            return f"pool {key[len(prefix) :]}" if key.startswith(prefix) else key

        if p.get("mongodb_uri"):
            ttl = float(p.get("lock_ttl") or 120.0)
            if ttl < MIN_LOCK_TTL:
                raise ConfigError("lock_ttl", f"must be at least {MIN_LOCK_TTL:g} seconds, got {ttl:g}")

            def mongo_lock(key: str) -> PoolLock:
                return MongoLease(
                    p["mongodb_uri"],
                    p["mongodb_database"],
                    "locks",
                    key,
                    ttl=ttl,
                    wait_timeout=timeout,
                    on_wait=self._lock_wait,
                    what=what(key),
                    check=check,
                )

            return mongo_lock
        lock_dir = os.path.expanduser(p.get("lock_dir") or DEFAULT_LOCK_DIR)

        def file_lock(key: str) -> PoolLock:
            return FileLock(
                os.path.join(lock_dir, f"{key}.lock"),
                timeout=timeout,
                on_wait=self._lock_wait,
                what=what(key),
                check=check,
            )

        return file_lock

    def backlog(self) -> t.Optional[Backlog]:
        """The job queue's part in a reconcile (`job_queue` and its options), or None when it is off."""
        p = self.params
        if not p.get("job_queue"):
            return None
        if not p.get("mongodb_uri"):
            raise ConfigError("job_queue", "needs mongodb_uri (or the environment variable MONGODB_URI)")
        if not HAS_PYMONGO:
            raise ConfigError("job_queue", missing_required_lib("pymongo"))
        grace = parse_duration(p["job_queue_grace"], "job_queue_grace")
        timeout = p["mongodb_timeout"]
        if timeout <= 0:
            raise ConfigError("mongodb_timeout", f"must be above 0, got {timeout:g}")
        # Its own name: the server's connection list tells the queue's reads from the lease's.
        self._mongo = MongoAccess(p["mongodb_uri"], server_timeout=timeout, appname="selfhosted.github_runners.queue")
        queue = JobQueue(self._mongo, database=p["mongodb_database"], jobs_collection=p["jobs_collection"])
        return Backlog(queue, grace=grace, backfill=p["job_queue_backfill"], api_host=api_host_of(p["github_api_url"]))

    # Results -----------------------------------------------------------------
    def run(self, main: t.Callable[[], t.Dict[str, t.Any]]) -> None:
        """Call `main` and exit with its result; every error becomes one clear fail_json."""
        try:
            result = main()
        except ConfigError as exc:
            self.module.fail_json(msg=f"invalid option {exc}", field=exc.field)
        except RunnerError as exc:
            self.module.fail_json(msg=str(exc))
        except TimeoutError as exc:
            self.module.fail_json(msg=str(exc))
        except Exception as exc:  # the single boundary: no traceback escapes main()
            self.module.fail_json(
                msg=f"unexpected error: {type(exc).__name__}: {exc}", exception=traceback.format_exc()
            )
        else:
            if result.pop("failed", False):
                self.module.fail_json(**result)
            self.module.exit_json(**result)
        finally:
            self.close()

    def close(self) -> None:
        for client in (self._github, self._cloud, self._mongo):
            close = getattr(client, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):  # closing is best effort
                    close()


def _write_bucket(burst: int, per_minute: float) -> TokenBucket:
    if burst < 1:
        raise ConfigError("github_write_burst", f"must be at least 1, got {burst}")
    if per_minute <= 0:
        raise ConfigError("github_writes_per_minute", f"must be above 0, got {per_minute:g}")
    return TokenBucket(burst, per_minute)
