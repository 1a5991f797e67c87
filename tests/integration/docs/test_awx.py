"""The AWX guide's files, checked without an AWX: the execution environment definition with
ansible-builder, the credential types against what the modules read, the configuration playbook
against the awx.awx modules' options, and the project playbook run against the sandbox with what
the credentials inject."""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import subprocess
import typing as t

import jinja2
import pytest
import yaml

from ansible_collections.selfhosted.github_runners.plugins.module_utils import _argspec
from tests.integration.docs.examples import DOCS, ROOT, covers, load_playbook
from tests.integration.playbook import BIN, ansible_env
from tests.sandbox.mongo import MongoServer

AWX = DOCS / "awx"
TYPES = sorted((AWX / "credential_types").glob("*.yml"))
#: What AWX accepts in a credential type (awx/main/models/credential: inputs and injectors schemas).
FIELD_KEYS = {
    "id",
    "label",
    "type",
    "secret",
    "multiline",
    "help_text",
    "default",
    "choices",
    "format",
    "ask_at_runtime",
}
FIELD_TYPES = {"string", "boolean"}
INJECTOR_KINDS = {"env", "extra_vars", "file"}
_TEMPLATE_NAMES = re.compile(r"{{\s*([\w.]+)\s*}}")


def module_environment() -> set[str]:
    """Every environment variable a module of the collection reads: credentials and option fallbacks."""
    names = set(_argspec.GITHUB_CREDENTIAL_ENV.values())
    for spec in (_argspec.GITHUB_AUTH, _argspec.OPENSTACK_AUTH, _argspec.LOCKING, _argspec.JOB_QUEUE):
        for option in spec.values():
            fallback = option.get("fallback")
            if fallback and fallback[0] == "env":
                names.update(fallback[1])
    return names


def role_options() -> set[str]:
    options: set[str] = set()
    for path in (ROOT / "roles").glob("*/meta/argument_specs.yml"):
        for entry in yaml.safe_load(path.read_text())["argument_specs"].values():
            options.update(entry.get("options", {}))
    return options


def inject(credential_type: dict[str, t.Any], inputs: dict[str, str], private_dir: pathlib.Path) -> dict[str, str]:
    """The environment AWX gives a job for a credential of this type: files written, templates rendered.

    A type with one file (`template`) gets its path as `tower.filename`; with several
    (`template.NAME`), as `tower.filename.NAME`.
    """
    injectors = credential_type["injectors"]
    paths: dict[str, str] = {}
    for key, template in injectors.get("file", {}).items():
        name = key.partition(".")[2]
        path = private_dir / f"credential-{name or 'file'}"
        path.write_text(jinja2.Template(template).render(**inputs))
        path.chmod(0o600)
        paths[name] = str(path)
    filename: t.Any = paths.get("", "") if set(paths) <= {""} else paths
    return {
        k: jinja2.Template(v).render(**inputs, tower={"filename": filename})
        for k, v in injectors.get("env", {}).items()
    }


@pytest.mark.parametrize("path", TYPES, ids=lambda p: p.stem)
@covers(*(str(p.relative_to(ROOT)) for p in TYPES))
def test_credential_types_have_the_shape_awx_accepts_and_inject_what_the_modules_read(path: pathlib.Path) -> None:
    spec = yaml.safe_load(path.read_text())
    assert set(spec) == {"name", "description", "kind", "inputs", "injectors"}
    assert spec["kind"] == "cloud"  # custom credential types are `cloud` or `net`
    fields = spec["inputs"]["fields"]
    ids = [field["id"] for field in fields]
    assert len(ids) == len(set(ids))
    for field in fields:
        assert set(field) <= FIELD_KEYS and {"id", "label", "type"} <= set(field), field
        assert field["type"] in FIELD_TYPES, field
    assert set(spec["inputs"]["required"]) <= set(ids)
    # Secrets are secret fields: AWX encrypts them and shows $encrypted$.
    for field in fields:
        if field["id"] in ("token", "private_key", "uri"):
            assert field.get("secret") is True, field

    injectors = spec["injectors"]
    assert injectors and set(injectors) <= INJECTOR_KINDS
    files = {key.split(".", 1)[1] for key in injectors.get("file", {}) if key.startswith("template.")}
    assert set(injectors.get("file", {})) <= {"template"} | {f"template.{name}" for name in files}
    for kind, templates in injectors.items():
        for target, template in templates.items():
            for name in _TEMPLATE_NAMES.findall(template):
                assert name in ids or name in {f"tower.filename.{f}" for f in files} | {"tower.filename"}, (
                    kind,
                    target,
                    name,
                )
    assert set(injectors.get("env", {})) <= module_environment()
    assert set(injectors.get("extra_vars", {})) <= role_options()


def test_the_credential_check_knows_the_modules_environment() -> None:
    assert {
        "GITHUB_TOKEN",
        "GITHUB_APP_PRIVATE_KEY_FILE",
        "GITHUB_API_URL",
        "MONGODB_URI",
        "OS_CLOUD",
    } <= module_environment()
    assert "GITHUB_PAT" not in module_environment()


@covers("docs/awx/execution-environment.yml", "docs/awx/requirements.yml")
def test_execution_environment_definition_builds_its_context(tmp_path: pathlib.Path) -> None:
    builder = [str(BIN / "ansible-builder"), "create", "--output-filename", "Containerfile"]
    proc = subprocess.run([*builder, "-f", str(AWX / "execution-environment.yml"), "-c", str(tmp_path / "context")],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    containerfile = (tmp_path / "context" / "Containerfile").read_text()
    assert "ansible-galaxy collection install" in containerfile
    assert yaml.safe_load((tmp_path / "context" / "_build" / "requirements.yml").read_text()) == yaml.safe_load(
        (AWX / "requirements.yml").read_text()
    )
    assert any(
        c["name"] == "selfhosted.github_runners"
        for c in yaml.safe_load((AWX / "requirements.yml").read_text())["collections"]
    )

    # The check can fail: a definition ansible-builder's schema refuses.
    broken = tmp_path / "broken"
    shutil.copytree(AWX, broken)
    definition = yaml.safe_load((broken / "execution-environment.yml").read_text())
    definition["dependencies"]["python_packages"] = ["openstacksdk"]  # not a key of version 3
    (broken / "execution-environment.yml").write_text(yaml.safe_dump(definition))
    proc = subprocess.run([*builder, "-f", str(broken / "execution-environment.yml"), "-c", str(tmp_path / "c2")],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode != 0


@covers("docs/awx/configure_awx.yml")
def test_configure_awx_uses_only_options_its_awx_modules_have(tmp_path: pathlib.Path) -> None:
    env = ansible_env(tmp_path)
    proc = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check", str(AWX / "configure_awx.yml")],
                          env=env, capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tasks = [task for play in load_playbook(AWX / "configure_awx.yml") for task in play["tasks"]]
    modules = sorted({key for task in tasks for key in task if key.startswith("awx.awx.")})
    assert len(modules) >= 7
    docs = json.loads(subprocess.run([str(BIN / "ansible-doc"), "--json", *modules], env=env, capture_output=True,
                                     text=True, timeout=120, check=True).stdout)  # fmt: skip
    for task in tasks:
        (module,) = [key for key in task if key.startswith("awx.awx.")]
        options = docs[module]["doc"]["options"]
        known = set(options) | {alias for option in options.values() for alias in option.get("aliases", [])}
        assert set(task[module]) <= known, (task["name"], sorted(set(task[module]) - known))
        required = {name for name, option in options.items() if option.get("required")}
        assert required <= set(task[module]), (task["name"], required)
    # Every credential type of the folder is created, and the job template runs without concurrent jobs.
    (types_task,) = [task for task in tasks if "awx.awx.credential_type" in task]
    assert sorted(
        f"{name}.yml" for name in load_playbook(AWX / "configure_awx.yml")[0]["vars"]["awx_credential_types"]
    ) == [p.name for p in TYPES]
    (template,) = [task["awx.awx.job_template"] for task in tasks if "awx.awx.job_template" in task]
    assert template["allow_simultaneous"] is False and template["playbook"] == "reconcile.yml"
    assert types_task


def job_template_setup() -> tuple[dict[str, t.Any], dict[str, t.Any]]:
    """(localhost's host variables, the job template's extra variables) as configure_awx.yml sets them."""
    tasks = [task for play in load_playbook(AWX / "configure_awx.yml") for task in play["tasks"]]
    (host,) = [task["awx.awx.host"] for task in tasks if "awx.awx.host" in task]
    (template,) = [task["awx.awx.job_template"] for task in tasks if "awx.awx.job_template" in task]
    return host["variables"], template["extra_vars"]


@pytest.mark.mongodb
@covers(
    "docs/awx/project/reconcile.yml",
    "docs/awx/credential_types/github_app.yml",
    "docs/awx/credential_types/github_token.yml",
    "docs/awx/credential_types/mongodb.yml",
)
def test_project_playbook_runs_with_what_the_credentials_inject(
    sandbox: t.Any, tmp_path: pathlib.Path, mongodb: MongoServer
) -> None:
    """A job as AWX would start it: the project's playbook beside pools.yml, localhost with the host
    variables of configure_awx.yml, the job template's extra variables, and for credentials AWX's
    OpenStack clouds.yaml (cloud `devstack`) and the environment our credential types inject."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copyfile(AWX / "project" / "reconcile.yml", project / "reconcile.yml")
    shutil.copyfile(DOCS / "examples" / "pools.yml", project / "pools.yml")
    host_vars, extra_vars = job_template_setup()
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": host_vars}}}))
    clouds = yaml.safe_load(pathlib.Path(sandbox.env["OS_CLIENT_CONFIG_FILE"]).read_text())
    clouds["clouds"] = {"devstack": clouds["clouds"][sandbox.env["OS_CLOUD"]]}
    (tmp_path / "clouds.yaml").write_text(yaml.safe_dump(clouds))

    types = {p.stem: yaml.safe_load(p.read_text()) for p in TYPES}
    api_url = sandbox.env["GITHUB_API_URL"]
    app = inject(types["github_app"], {"app_id": sandbox.env["GITHUB_APP_ID"],
                                       "installation_id": sandbox.env["GITHUB_APP_INSTALLATION_ID"],
                                       "private_key": pathlib.Path(sandbox.env["GITHUB_APP_PRIVATE_KEY_FILE"]).read_text(),
                                       "api_url": api_url}, tmp_path)  # fmt: skip
    token = inject(types["github_token"], {"token": sandbox.env["GITHUB_TOKEN"], "api_url": api_url}, tmp_path)
    database = inject(types["mongodb"], {"uri": mongodb.uri}, tmp_path)
    base = ansible_env(tmp_path, drop=("ANSIBLE_", "GITHUB_", "OS_", "MONGODB_"))
    base |= {"OS_CLIENT_CONFIG_FILE": str(tmp_path / "clouds.yaml")} | database

    def job(credentials: dict[str, str], *extra: str) -> str:
        cmd = [str(BIN / "ansible-playbook"), "-i", str(inventory), str(project / "reconcile.yml"),
               "-e", json.dumps(extra_vars), *extra]  # fmt: skip
        proc = subprocess.run(cmd, env=base | credentials, cwd=project, capture_output=True, text=True,
                              timeout=600, check=False)  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    try:
        assert "small: no runners; created 2, deleted 0" in job(app)
        assert "small: " in job(token, "--check")
    finally:
        emptied = job(token, "-e", "reconcile_state=absent", "-e", "reconcile_force=true")
    assert "deleted 2 (" in emptied
