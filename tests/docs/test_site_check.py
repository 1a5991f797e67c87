"""The site check itself: it finds broken links and missing images on a small site made to have them."""

from __future__ import annotations

import pathlib
import struct
import typing as t
import zlib

import pytest

from tests.docs.site_check import Page, broken_links, crawl, missing_images


def _png(path: pathlib.Path) -> None:
    """A valid 1x1 white PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0\xff\xff\xff"))
                     + chunk(b"IEND", b""))  # fmt: skip


def _site(root: pathlib.Path) -> pathlib.Path:
    site = root / "site"
    (site / "sub").mkdir(parents=True)
    _png(site / "ok.png")
    (site / "index.html").write_text(
        "<html><body>"
        '<a href="sub/page.html#here">fine</a> <a href="sub/">a folder with an index</a>'
        '<a href="#top">this page</a> <a href="https://example.com/">external, not followed</a>'
        '<a href="missing.html">no such page</a> <a href="sub/page.html#nowhere">no such anchor</a>'
        '<a href="../outside.html">outside</a>'
        '<img src="ok.png" alt="ok"> <img src="gone.png" alt="gone">'
        '<h1 id="top">top</h1></body></html>'
    )
    (site / "sub" / "page.html").write_text(
        '<html><body><p id="here">here</p><a href="../index.html">up</a></body></html>'
    )
    (site / "sub" / "index.html").write_text('<html><head><link rel="stylesheet" href="gone.css"></head></html>')
    (root / "outside.html").write_text("<html></html>")
    return site


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return _site(tmp_path_factory.mktemp("site-check"))


@pytest.fixture(scope="module")
def pages(site: pathlib.Path) -> t.Dict[pathlib.Path, Page]:
    return crawl(site)


def test_the_check_finds_each_broken_link_and_nothing_else(
    site: pathlib.Path, pages: t.Dict[pathlib.Path, Page]
) -> None:
    assert set(pages) == {pathlib.Path("index.html"), pathlib.Path("sub/page.html"), pathlib.Path("sub/index.html")}
    found = broken_links(site, pages)
    assert len(found) == 3, found
    assert any("missing file" in f and "missing.html" in f for f in found)
    assert any("missing anchor" in f and "#nowhere" in f for f in found)
    assert any("leaves the site" in f and "outside.html" in f for f in found)


def test_the_check_finds_each_image_and_resource_that_does_not_load(pages: t.Dict[pathlib.Path, Page]) -> None:
    found = missing_images(pages)
    assert any(f.startswith("index.html: image not shown") and f.endswith("gone.png") for f in found), found
    assert any(f.startswith("sub/index.html: did not load") and "gone.css" in f for f in found), found
    assert not any("ok.png" in f for f in found), found
