"""The built documentation site, opened page by page in headless Chromium."""

from __future__ import annotations

import pathlib
import typing as t

from tests.docs.site_check import Page, broken_links, missing_images
from tests.utils.build_docsite import DOCS
from tests.utils.build_docsite import pages as markdown_pages
from tests.utils.docs_tools import ROOT
from tests.utils.render_mermaid import alt_text, extract


def test_no_link_inside_the_site_is_broken(site: pathlib.Path, pages: t.Dict[pathlib.Path, Page]) -> None:
    assert broken_links(site, pages) == []


def test_every_image_and_resource_loads(pages: t.Dict[pathlib.Path, Page]) -> None:
    assert missing_images(pages) == []


def test_the_reference_has_a_page_per_module_with_examples_and_return_values(pages: t.Dict[pathlib.Path, Page]) -> None:
    modules = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if not p.stem.startswith("_"))
    assert modules
    for name in modules:
        page = pages.get(pathlib.Path("collection", f"{name}_module.html"))
        assert page is not None, f"no reference page for module {name}"
        assert {"synopsis", "parameters", "examples", "return-values"} <= page.ids, name


def test_the_reference_has_a_page_per_role_with_its_entry_points(pages: t.Dict[pathlib.Path, Page]) -> None:
    roles = sorted(p.parent.parent.name for p in (ROOT / "roles").glob("*/meta/argument_specs.yml"))
    assert roles
    for name in roles:
        page = pages.get(pathlib.Path("collection", f"{name}_role.html"))
        assert page is not None, f"no reference page for role {name}"
        assert any(anchor.startswith("entry-point-main-") for anchor in page.ids), name


def test_every_markdown_page_shows_each_of_its_diagrams(pages: t.Dict[pathlib.Path, Page]) -> None:
    assert pathlib.Path("architecture.md") in markdown_pages()
    for page in markdown_pages():
        blocks = extract(DOCS / page)
        html = pages[page.with_suffix(".html")]
        diagrams = [image for image in html.images if "mermaid-diagram" in image["cls"].split()]
        assert len(diagrams) == len(blocks), page
        assert all(image["ok"] for image in diagrams), page
        # The alt text is the diagram's accTitle, and every diagram has one.
        assert [image["alt"] for image in diagrams] == [alt_text(block.source) for block in blocks], page
        assert all("accTitle" in block.source for block in blocks), page


def test_the_performance_page_shows_the_latency_plot(pages: t.Dict[pathlib.Path, Page]) -> None:
    page = pages[pathlib.Path("performance.html")]
    plots = [image for image in page.images if image["src"].endswith("/latency.png")]
    assert plots, [image["src"] for image in page.images]
    assert all(image["ok"] for image in plots)
