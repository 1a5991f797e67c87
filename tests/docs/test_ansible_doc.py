"""`ansible-doc` on the installed collection, as users read it: every module shows its examples and
return values, every role entry point its examples (and what the `reconcile` role leaves behind)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import typing as t

import pytest

from tests.utils.docs_tools import ROOT

FQCN = "selfhosted.github_runners"
BIN = pathlib.Path(sys.executable).parent
INSTALLED = pathlib.Path(os.environ.get("GHR_DOCS_COLLECTIONS") or ROOT / ".build" / "installed")
MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if not p.stem.startswith("_"))
ROLES = sorted(p.parent.parent.name for p in (ROOT / "roles").glob("*/meta/argument_specs.yml"))


def ansible_doc(kind: str, name: str, *args: str) -> str:
    if not (INSTALLED / "ansible_collections" / "selfhosted" / "github_runners").is_dir():
        pytest.fail(f"no installed collection in {INSTALLED}: build it with `make docs-check`")
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(INSTALLED), "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run(
        [str(BIN / "ansible-doc"), "--type", kind, *args, f"{FQCN}.{name}"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_collection_has_modules_and_roles() -> None:
    assert len(MODULES) >= 4 and len(ROLES) >= 4


@pytest.mark.parametrize("module", MODULES)
def test_every_module_shows_examples_and_return_values(module: str) -> None:
    doc = json.loads(ansible_doc("module", module, "--json"))[f"{FQCN}.{module}"]
    assert doc["examples"].strip(), module
    assert doc["return"], module
    for value in doc["return"].values():
        assert value.get("description") and value.get("returned") and value.get("type"), (module, value)
    text = ansible_doc("module", module)
    assert "EXAMPLES:" in text and "RETURN VALUES:" in text, module


@pytest.mark.parametrize("role", ROLES)
def test_every_role_entry_point_shows_examples(role: str) -> None:
    doc = json.loads(ansible_doc("role", role, "--json"))[f"{FQCN}.{role}"]
    entry_points: dict[str, t.Any] = doc["entry_points"]
    assert entry_points, role
    for name, entry in entry_points.items():
        assert str(entry.get("examples", "")).strip(), f"{role}: entry point {name} has no examples"
    text = ansible_doc("role", role)
    assert text.count("EXAMPLES:") == len(entry_points), role


def test_the_reconcile_role_names_the_results_it_leaves() -> None:
    # Roles have no return values in Ansible: the reconcile role's entry points name the variable they register.
    entry_points = json.loads(ansible_doc("role", "reconcile", "--json"))[f"{FQCN}.reconcile"]["entry_points"]
    registered = {"main": "reconcile_result", "status": "reconcile_status"}
    for name, variable in registered.items():
        assert f"C({variable})" in " ".join(entry_points[name]["description"]), name
        tasks = (ROOT / "roles" / "reconcile" / "tasks" / f"{name}.yml").read_text()
        assert f"register: {variable}" in tasks, name
