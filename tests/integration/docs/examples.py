"""The example files of the documentation: which pages name them, and which tests run them."""

from __future__ import annotations

import pathlib
import re
import typing as t

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs"
#: Folders whose files are examples: each must be named by a page and covered by a test.
EXAMPLE_DIRS = (DOCS / "examples", DOCS / "awx")

_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
_INCLUDE = re.compile(r"^```\{literalinclude\}\s+(\S+)", re.MULTILINE)
_PATH = re.compile(r"\b(docs/(?:examples|awx)/[\w./-]+\.(?:ya?ml|sh))\b")
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)

#: Example files -> the tests that run or check them, filled by `covers`.
COVERED: dict[pathlib.Path, list[str]] = {}


def covers(*paths: str) -> t.Callable[[t.Callable[..., t.Any]], t.Callable[..., t.Any]]:
    """Records that the decorated test runs (or checks) the example files at `paths` (relative to the root)."""

    def mark(test: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
        for path in paths:
            assert (ROOT / path).is_file(), path
            COVERED.setdefault(ROOT / path, []).append(test.__name__)
        return test

    return mark


def pages() -> list[pathlib.Path]:
    """The Markdown pages users read: README.md and docs/ (without the site's configuration)."""
    site = DOCS / "site"
    return [ROOT / "README.md", *sorted(p for p in DOCS.rglob("*.md") if site not in p.parents)]


def example_files() -> list[pathlib.Path]:
    return sorted(p for folder in EXAMPLE_DIRS for p in folder.rglob("*") if p.is_file())


def references(page: pathlib.Path) -> set[pathlib.Path]:
    """Example files a page links to, includes, or names by their path from the root."""
    text = page.read_text()
    found = set()
    for target in [*_LINK.findall(text), *_INCLUDE.findall(text)]:
        if "://" in target or not target.endswith((".yml", ".yaml", ".sh")):
            continue
        found.add((page.parent / target).resolve())
    found.update((ROOT / path).resolve() for path in _PATH.findall(text))
    return found


def fenced_blocks(page: pathlib.Path) -> list[tuple[str, str]]:
    """(language, text) of each fenced code block of a page."""
    return list(_FENCE.findall(page.read_text()))


def is_playbook_or_tasks(text: str) -> bool:
    """Whether YAML text is a play list or a task list (rather than variables or a configuration)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    if not isinstance(data, list) or not data or not all(isinstance(item, dict) for item in data):
        return False
    for item in data:
        if "hosts" in item or "import_playbook" in item or "ansible.builtin.import_playbook" in item:
            return True
        if "name" in item and any("." in key for key in item):  # a task: a name and an FQCN module
            return True
    return False


def shell_block(page: pathlib.Path, containing: str) -> str:
    """The first sh block of a page that contains `containing`."""
    for lang, body in fenced_blocks(page):
        if lang == "sh" and containing in body:
            return body
    raise AssertionError(f"{page.name}: no sh block with {containing!r}")


class _UnsafeLoader(yaml.SafeLoader):
    """Reads Ansible's `!unsafe` tag as the plain string it marks."""


_UnsafeLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))  # type: ignore[arg-type]


def load_playbook(path: pathlib.Path) -> list[dict[str, t.Any]]:
    return t.cast(list[dict[str, t.Any]], yaml.load(path.read_text(), Loader=_UnsafeLoader))
