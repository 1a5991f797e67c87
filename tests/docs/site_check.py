"""Open every page of a built HTML site in headless Chromium and find broken links and missing images."""

from __future__ import annotations

import dataclasses
import pathlib
import typing as t
import urllib.parse

from tests.utils.chromium import Chromium

# Run on each loaded page: the ids a link can point at, the links, and whether each image decoded.
_PAGE_SCRIPT = """({
  ids: Array.from(document.querySelectorAll('[id], a[name]'), e => e.id || e.name),
  links: Array.from(document.querySelectorAll('a[href]'), a => a.href),
  images: Array.from(document.images, i => ({src: i.currentSrc || i.src, alt: i.alt, cls: i.className,
                                              ok: i.complete && i.naturalWidth > 0})),
})"""


@dataclasses.dataclass
class Page:
    path: pathlib.Path  # relative to the site
    ids: t.Set[str]
    links: t.List[str]
    images: t.List[t.Dict[str, t.Any]]
    failed: t.List[str]  # resources (CSS, scripts, images) that did not load


def crawl(site: pathlib.Path) -> t.Dict[pathlib.Path, Page]:
    """Every HTML page of the site as Chromium loaded it, by path relative to the site."""
    pages: t.Dict[pathlib.Path, Page] = {}
    with Chromium() as browser:
        for html in sorted(site.rglob("*.html")):
            loaded = browser.load(html.resolve().as_uri(), _PAGE_SCRIPT)
            value = loaded.value or {"ids": [], "links": [], "images": []}
            rel = html.relative_to(site)
            pages[rel] = Page(rel, set(value["ids"]), value["links"], value["images"], loaded.failed)
    return pages


def broken_links(site: pathlib.Path, pages: t.Mapping[pathlib.Path, Page]) -> t.List[str]:
    """Links inside the site to a file that is not there, or to an anchor its page does not have."""
    root = site.resolve()
    broken = []
    for page in pages.values():
        for link in page.links:
            url = urllib.parse.urlsplit(link)
            if url.scheme != "file":
                continue  # external links are not followed: the build is offline
            target = pathlib.Path(urllib.parse.unquote(url.path))
            if target.is_dir():
                target = target / "index.html"
            if root not in target.parents:
                broken.append(f"{page.path}: link leaves the site: {link}")
            elif not target.is_file():
                broken.append(f"{page.path}: link to a missing file: {link}")
            elif url.fragment and target.suffix == ".html":
                linked = pages.get(target.relative_to(root))
                if linked is None or urllib.parse.unquote(url.fragment) not in linked.ids:
                    broken.append(f"{page.path}: link to a missing anchor: {link}")
    return broken


def missing_images(pages: t.Mapping[pathlib.Path, Page]) -> t.List[str]:
    """Images the browser could not show, and any other resource that failed to load."""
    missing = [f"{p.path}: image not shown: {i['src']}" for p in pages.values() for i in p.images if not i["ok"]]
    missing += [f"{p.path}: did not load: {failure}" for p in pages.values() for failure in p.failed]
    return missing
