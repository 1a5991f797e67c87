"""The site's own Sphinx extensions (docs/site): diagrams from rendered images, links to Ansible's docs."""

from __future__ import annotations

import pathlib
import subprocess
import sys

from tests.utils.build_docsite import SITE_CONFIG

sys.path.insert(0, str(SITE_CONFIG))
from ansible_docs_links import url_of

sys.path.pop(0)


def test_a_diagram_without_its_rendered_image_fails_the_build(tmp_path: pathlib.Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "index.md").write_text("# Page\n\n```mermaid\nflowchart LR\n    accTitle: boxes\n    a --> b\n```\n")
    proc = subprocess.run(
        ["sphinx-build", "--quiet", "--fail-on-warning", "--conf-dir", str(SITE_CONFIG), str(src), str(tmp_path / "html")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "index.md:3: ERROR: mermaid block has no rendered image _diagrams/" in proc.stderr, proc.stderr


def test_labels_of_ansible_docs_resolve_to_their_pages() -> None:
    base = "https://docs.ansible.com/projects/ansible/latest/"
    assert url_of("common_return_values") == base + "reference_appendices/common_return_values.html"
    assert url_of("ansible_collections.ansible.builtin.copy_module") == (
        base + "collections/ansible/builtin/copy_module.html"
    )
    assert url_of("ansible_collections.community.general.foo_module") is None
    assert url_of("no_such_label") is None
