"""The built documentation site (`make docs` builds it into .build/docs/html)."""

from __future__ import annotations

import os
import pathlib
import typing as t

import pytest

from tests.docs.site_check import Page, crawl
from tests.utils.docs_tools import ROOT


@pytest.fixture(scope="session")
def site() -> pathlib.Path:
    path = pathlib.Path(os.environ.get("GHR_DOCS_SITE") or ROOT / ".build" / "docs" / "html")
    if not (path / "index.html").is_file():
        pytest.fail(f"no documentation site in {path}: build it with `make docs`")
    return path


@pytest.fixture(scope="session")
def pages(site: pathlib.Path) -> t.Dict[pathlib.Path, Page]:
    """Every page of the site, as headless Chromium loaded it."""
    return crawl(site)
