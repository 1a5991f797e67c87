"""The documentation's examples, run as the pages tell users to run them, against the sandbox.

Every example file under docs/examples/ and docs/awx/ is named by a page and covered by a test
here or in test_awx.py; no page holds a playbook or task list that is not such a file.
"""

from __future__ import annotations

import datetime
import importlib
import json
import os
import pathlib
import subprocess
import time
import typing as t

import pytest
import yaml

from ansible_collections.selfhosted.github_runners.plugins.module_utils._argspec import POOL
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.job import JobKey, new_job
from tests.integration.docs.examples import (
    COVERED,
    DOCS,
    ROOT,
    covers,
    example_files,
    fenced_blocks,
    is_playbook_or_tasks,
    pages,
    references,
    shell_block,
)
from tests.integration.playbook import BIN, ansible_env
from tests.integration.reactive.claimers import open_queue
from tests.sandbox.mongo import MongoServer

POOLS = "docs/examples/pools.yml"
CONTROLLER = yaml.safe_load((ROOT / POOLS).read_text())["reconcile_controller_id"]


# Coverage: the pages, the files and the tests agree ---------------------------------------------


def test_every_example_a_page_names_exists() -> None:
    missing = {
        str(page.relative_to(ROOT)): sorted(str(p) for p in references(page) if not p.is_file()) for page in pages()
    }
    assert {page: paths for page, paths in missing.items() if paths} == {}


def test_every_example_file_is_named_by_a_page_and_run_by_a_test() -> None:
    importlib.import_module("tests.integration.docs.test_awx")  # its tests record what they cover too
    named = set().union(*(references(page) for page in pages()))
    files = example_files()
    assert files
    assert [str(f.relative_to(ROOT)) for f in files if f.resolve() not in named] == []
    assert [str(f.relative_to(ROOT)) for f in files if f not in COVERED] == []


def test_no_page_holds_a_playbook_that_is_not_an_example_file() -> None:
    texts = [p.read_text() for p in example_files()] + [p.read_text() for p in (ROOT / "playbooks").glob("*.yml")]
    inline = [
        f"{page.relative_to(ROOT)}: {body.splitlines()[0]}"
        for page in pages()
        for lang, body in fenced_blocks(page)
        if lang in ("yaml", "yml") and is_playbook_or_tasks(body) and not any(body.strip() in text for text in texts)
    ]
    assert inline == []


def test_the_playbook_check_tells_playbooks_from_variables() -> None:
    assert is_playbook_or_tasks("- hosts: localhost\n  tasks: []\n")
    assert is_playbook_or_tasks("- name: Reconcile\n  selfhosted.github_runners.github_runner_pool: {}\n")
    assert not is_playbook_or_tasks("reconcile_pools:\n  - name: small\n")
    assert not is_playbook_or_tasks("- name: small\n  labels: [linux]\n")


# Running the examples ---------------------------------------------------------------------------


def sandbox_env(sandbox: t.Any, workdir: pathlib.Path) -> dict[str, str]:
    """What a user's shell has after sourcing the sandbox's env file (without MongoDB: file locks)."""
    env = ansible_env(workdir, drop=("ANSIBLE_", "GITHUB_", "OS_", "MONGODB_"))
    env.update({k: v for k, v in sandbox.env.items() if k != "MONGODB_URI"})
    return env


def playbook(
    env: dict[str, str], *args: str, inventory: pathlib.Path | None = None, expect_ok: bool = True
) -> subprocess.CompletedProcess[str]:
    cmd = [str(BIN / "ansible-playbook"), *(["-i", str(inventory)] if inventory else []), *args]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    if expect_ok:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def control(sandbox: t.Any, method: str, path: str, body: t.Any = None) -> t.Any:
    return sandbox.control.request(method, path, body)


def pool_servers(sandbox: t.Any, pool: str) -> list[dict[str, t.Any]]:
    """The example pool's servers that are not deleted."""
    tags = {f"ghr-pool={pool}", f"ghr-controller={CONTROLLER}"}
    servers = sandbox.state()["openstack"]["servers"]
    return [s for s in servers if tags <= set(s.get("tags", [])) and s["status"] != "DELETED"]


def online_runners(sandbox: t.Any, pool: str) -> list[str]:
    runners = sandbox.state()["github"]["runners"]
    return [r["name"] for r in runners if r["name"].startswith(f"{CONTROLLER}-{pool}-") and r["status"] == "online"]


def wait_for(what: str, predicate: t.Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture
def empty_pools(sandbox: t.Any, tmp_path: pathlib.Path) -> t.Iterator[dict[str, str]]:
    """The sandbox env for the example pools; the pools are emptied afterwards, whatever the test did."""
    sandbox.clear_faults()
    sandbox.reset_config()
    env = sandbox_env(sandbox, tmp_path)
    assert pool_servers(sandbox, "small") == [] and pool_servers(sandbox, "large") == []
    yield env
    sandbox.reset_config()
    absent = ["selfhosted.github_runners.reconcile", "-e", f"@{POOLS}", "-e", "reconcile_state=absent",
              "-e", "reconcile_force=true", "-e", f"reconcile_lock_dir={tmp_path / 'cleanup-locks'}"]  # fmt: skip
    playbook(env, *absent)
    wait_for(
        "the example pools to be empty", lambda: not pool_servers(sandbox, "small") + pool_servers(sandbox, "large")
    )


@covers(POOLS)
def test_quick_start_runs_as_written(tmp_path: pathlib.Path) -> None:
    """Section 2 of the quick start, in a shell of its own, with a sandbox of its own."""
    script = shell_block(DOCS / "quickstart.md", "tests.sandbox up")
    sandbox_dir = tmp_path / "sandbox"
    script = script.replace("/tmp/ghr-sandbox", str(sandbox_dir))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "GITHUB_", "OS_", "MONGODB_"))}
    env["HOME"] = str(tmp_path / "home")  # the default lock directory is under it
    try:
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    finally:
        subprocess.run([str(BIN / "python"), "-m", "tests.sandbox", "down", "--dir", str(sandbox_dir)],
                       cwd=ROOT, capture_output=True, timeout=120, check=False)  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "small: no runners; would create 2, would delete 0" in output
    assert "large: no runners; would create 1, would delete 0" in output
    assert "small: no runners; created 2, deleted 0" in output
    status = [line for line in output.splitlines() if f"{CONTROLLER}-small-" in line and " vm " in line]
    assert len(status) == 2 and all(
        "idle" in line and "vm ACTIVE" in line and "github online" in line for line in status
    )
    assert "small: idle 2; created 0, deleted 2 (absent 2)" in output
    assert "large: idle 1; created 0, deleted 1 (absent 1)" in output


@covers(POOLS, "playbooks/reconcile.yml", "playbooks/flush.yml", "playbooks/status.yml")
def test_pools_example_with_the_reconcile_status_and_flush_playbooks(
    sandbox: t.Any, tmp_path: pathlib.Path, empty_pools: dict[str, str]
) -> None:
    locks = f"reconcile_lock_dir={tmp_path / 'locks'}"
    run = ("-e", f"@{POOLS}", "-e", locks)
    created = playbook(empty_pools, "selfhosted.github_runners.reconcile", *run, "-e", "reconcile_wait=true").stdout
    assert "small: no runners; created 2, deleted 0" in created
    assert "large: no runners; created 1, deleted 0" in created
    again = playbook(empty_pools, "selfhosted.github_runners.reconcile", *run).stdout
    assert "small: idle 2; created 0, deleted 0" in again and "changed=0" in again

    shown = playbook(empty_pools, "selfhosted.github_runners.status", *run).stdout
    assert "small: idle 2" in shown and "large: idle 1" in shown
    before = {s["name"] for s in pool_servers(sandbox, "small")}

    flushed = playbook(empty_pools, "selfhosted.github_runners.flush", *run).stdout
    assert "small: idle 2; created 2, deleted 2 (flush 2)" in flushed
    after = {s["name"] for s in pool_servers(sandbox, "small")}
    assert len(after) == 2 and not after & before


@covers("docs/examples/reconcile_own_playbook.yml", "docs/examples/check_pools.yml")
def test_own_playbook_and_check_pools_examples_show_deletions_and_trouble(
    sandbox: t.Any, tmp_path: pathlib.Path, empty_pools: dict[str, str]
) -> None:
    run = ("-e", f"@{POOLS}", "-e", f"reconcile_lock_dir={tmp_path / 'locks'}")
    first = playbook(empty_pools, "docs/examples/reconcile_own_playbook.yml", *run).stdout
    assert "small: no runners; created 2, deleted 0" in first
    wait_for("two online runners", lambda: len(online_runners(sandbox, "small")) == 2)
    assert playbook(empty_pools, "docs/examples/check_pools.yml", *run).returncode == 0

    # One job for the small pool: its runner takes it, finishes and powers its VM off.
    labels = ["self-hosted", "linux", "small"]
    control(
        sandbox, "POST", "/jobs", {"repository": sandbox.env["GITHUB_REPOSITORY"], "labels": labels, "duration": 0.2}
    )
    wait_for("a finished runner VM", lambda: any(s["status"] == "SHUTOFF" for s in pool_servers(sandbox, "small")))
    finished = next(s["name"] for s in pool_servers(sandbox, "small") if s["status"] == "SHUTOFF")
    checked = playbook(empty_pools, "docs/examples/check_pools.yml", *run).stdout
    assert f"{finished} is finished: VM SHUTOFF" in checked

    # The replacement stays in BUILD: check_pools fails on it once its boot counts as slow.
    sandbox.set_config({"openstack.boot_delay": 120})
    second = playbook(empty_pools, "docs/examples/reconcile_own_playbook.yml", *run).stdout
    assert "created 1, deleted 1 (finished 1)" in second
    assert f"small: {{'finished': ['{finished}']}}" in second
    slow = playbook(empty_pools, "docs/examples/check_pools.yml", *run, "-e", "slow_boot_seconds=-1", expect_ok=False)
    assert slow.returncode != 0
    assert "booting for more than -1 s: " in slow.stdout


@covers("docs/examples/reconcile_timer.yml")
def test_reconcile_timer_example_installs_a_service_that_reconciles(
    sandbox: t.Any, tmp_path: pathlib.Path, empty_pools: dict[str, str]
) -> None:
    clouds = yaml.safe_load(pathlib.Path(sandbox.env["OS_CLIENT_CONFIG_FILE"]).read_text())
    clouds["clouds"] = {"mycloud": clouds["clouds"][sandbox.env["OS_CLOUD"]]}
    secrets = tmp_path / "vault.yml"
    secrets.write_text(yaml.safe_dump({"vault_github_token": sandbox.env["GITHUB_TOKEN"],
                                       "vault_clouds_yaml": yaml.safe_dump(clouds)}))  # fmt: skip
    etc, state, units = tmp_path / "etc", tmp_path / "state", tmp_path / "units"
    units.mkdir()
    # Only what cannot be on a test machine changes: the paths, the user, no systemctl.
    overrides = {
        "reconcile_timer_config_dir": str(etc),
        "reconcile_timer_pools_file": str(etc / "pools.yml"),
        "reconcile_timer_env_file": str(etc / "reconcile.env"),
        "reconcile_timer_state_dir": str(state),
        "reconcile_timer_unit_dir": str(units),
        "reconcile_timer_user": "root",
        "reconcile_timer_manage_service": False,
        "reconcile_timer_ansible_playbook": str(BIN / "ansible-playbook"),
        "github_api_url": sandbox.env["GITHUB_API_URL"],
    }
    playbook(empty_pools, "docs/examples/reconcile_timer.yml", "-e", f"@{POOLS}", "-e", f"@{secrets}",
             "-e", json.dumps(overrides))  # fmt: skip
    assert yaml.safe_load((etc / "pools.yml").read_text()) == yaml.safe_load((ROOT / POOLS).read_text())
    assert (etc / "reconcile.env").stat().st_mode & 0o777 == 0o600
    assert (etc / "clouds.yaml").stat().st_mode & 0o777 == 0o600
    assert "OnUnitInactiveSec=2min" in (units / "github-runners-reconcile.timer").read_text()

    # What the timer starts: the unit's command line with its environment file.
    unit = (units / "github-runners-reconcile.service").read_text()
    command = next(line for line in unit.splitlines() if line.startswith("ExecStart=")).removeprefix("ExecStart=")
    service_env = {"PATH": empty_pools["PATH"], "ANSIBLE_COLLECTIONS_PATH": empty_pools["ANSIBLE_COLLECTIONS_PATH"]}
    for line in (etc / "reconcile.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _eq, value = line.partition("=")
            service_env[key] = value.strip('"')
    state.joinpath("tmp").mkdir(exist_ok=True)
    proc = subprocess.run(command.split(), env=service_env, cwd=state, capture_output=True, text=True,
                          timeout=600, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "small: no runners; created 2, deleted 0" in proc.stdout


@pytest.mark.mongodb
@covers("docs/examples/queue_depth.yml")
def test_queue_depth_example_fails_on_a_stale_or_dead_job(
    tmp_path: pathlib.Path, mongodb: MongoServer, database: str
) -> None:
    env = ansible_env(tmp_path, drop=("ANSIBLE_", "MONGODB_")) | {"MONGODB_URI": mongodb.uri}
    run = ("docs/examples/queue_depth.yml", "-e", f"job_queue_database={database}")
    queue = open_queue(mongodb.uri, database, "docs")
    try:
        queue.ensure_indexes()
        now = datetime.datetime.now(datetime.UTC)
        queue.enqueue(
            new_job(JobKey("api.github.com", "octo-org/app", 1), pool="small", labels=[], status="queued", now=now)
        )
        fresh = playbook(env, *run)
        assert "small queued: 1, oldest " in fresh.stdout

        old = now - datetime.timedelta(hours=1)
        queue.enqueue(
            new_job(JobKey("api.github.com", "octo-org/app", 2), pool="large", labels=[], status="queued", now=old)
        )
        stale = playbook(env, *run, expect_ok=False)
        assert stale.returncode != 0 and "the job queue needs a look" in stale.stdout
        assert playbook(env, *run, "-e", "max_wait_seconds=7200").returncode == 0

        (lease,) = queue.claim(["small"]).leases
        queue.mark_dead(lease, "job not found (404)")
        dead = playbook(env, *run, "-e", "max_wait_seconds=7200", expect_ok=False)
        assert dead.returncode != 0 and "small dead: 1" in dead.stdout
    finally:
        queue.mongo.close()


@covers("docs/examples/reactive.yml", "playbooks/deploy_reactive.yml")
@pytest.mark.parametrize(
    ("role", "required", "wrong"),
    [
        (
            "webhook_router",
            ("webhook_router_webhook_secrets", "webhook_router_mongodb_uri", "webhook_router_pools"),
            {"webhook_router_pools": [{"labels": ["small"]}]},  # a pool without its name
        ),
        (
            "reactive_consumer",
            ("reactive_consumer_controller_id", "reactive_consumer_github_token", "reactive_consumer_mongodb_uri",
             "reactive_consumer_openstack_cloud", "reactive_consumer_openstack_clouds_yaml", "reactive_consumer_pools"),
            {"reactive_consumer_metrics_port": "http"},
        ),
    ],
)  # fmt: skip
def test_reactive_example_fits_the_roles(
    tmp_path: pathlib.Path, role: str, required: tuple[str, ...], wrong: dict[str, t.Any]
) -> None:
    """The example's variables pass each role's own argument validation; the roles themselves are installed
    and run by tests/integration/roles/."""
    env = ansible_env(tmp_path)
    secrets = {
        "vault_webhook_secret": "s" * 32,
        "vault_mongodb_uri": "mongodb://127.0.0.1:1/",
        "vault_github_token": "ghp_" + "t" * 36,
        "vault_clouds_yaml": "clouds: {}",
    }
    args = ("-e", "@docs/examples/reactive.yml", "-e", json.dumps(secrets))
    syntax = playbook(env, "--syntax-check", "playbooks/deploy_reactive.yml", *args)
    assert "playbook: playbooks/deploy_reactive.yml" in syntax.stdout
    specs = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    assert all(name in options for name in required)

    def check(names: t.Iterable[str]) -> pathlib.Path:
        path = tmp_path / "check.yml"
        path.write_text(yaml.safe_dump([{
            "name": "check the example against the role's argument spec",
            "hosts": "localhost", "connection": "local", "gather_facts": False,
            "tasks": [{"name": "validate", "ansible.builtin.validate_argument_spec": {
                "argument_spec": options,
                "provided_arguments": {name: "{{ " + name + " }}" for name in names}}}],
        }]))  # fmt: skip
        return path

    playbook(env, str(check(required)), *args)
    refused = playbook(env, str(check({*required, *wrong})), *args, "-e", json.dumps(wrong), expect_ok=False)
    assert refused.returncode != 0 and next(iter(wrong)) in refused.stdout


@covers("docs/examples/install-runner.sh")
def test_runner_image_script_installs_what_the_user_data_expects(tmp_path: pathlib.Path) -> None:
    script = ROOT / "docs" / "examples" / "install-runner.sh"
    proc = subprocess.run([str(BIN / "shellcheck"), str(script)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout
    text = script.read_text()
    defaults = POOL["user_data"]["options"]
    assert f"RUNNER_USER={defaults['runner_user']['default']}\n" in text
    assert f"RUNNER_DIR={defaults['runner']['options']['directory']['default']}\n" in text
    assert "cloud-init clean" in text
    # Without its two settings it stops before it changes anything.
    proc = subprocess.run(["bash", str(script)], env={"PATH": os.environ["PATH"]}, capture_output=True, text=True,
                          cwd=tmp_path, check=False, timeout=60)  # fmt: skip
    assert proc.returncode != 0 and "RUNNER_VERSION" in proc.stderr
