"""Build the documentation site: the collection reference, the Markdown pages and their diagrams.

Stages OUT/src (what `antsibull-docs sphinx-init`'s build.sh would assemble) and builds
it with docs/site/conf.py into OUT/html; Sphinx warnings are errors.

- OUT/src/collection/: antsibull-docs' reference of the modules and roles, generated
  from the collection installed in COLLECTIONS (what users install, not the work tree);
- OUT/src/: docs/site/index.rst and every Markdown page under docs/ (not docs/site/), with the
  example files the pages include and link to (docs/examples/, docs/awx/);
- OUT/src/_diagrams/: the PNGs that tests.utils.render_mermaid wrote into DIAGRAMS;
- OUT/src/_plots/: the benchmark plots, drawn from the results the performance page reports
  (docs/site/performance-results.json, a copy of a `make bench` run's bench/results.json).

Usage: python -m tests.utils.build_docsite COLLECTIONS DIAGRAMS OUT
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

from tests.utils.docs_tools import ROOT

DOCS = ROOT / "docs"
SITE_CONFIG = DOCS / "site"
BENCH_RESULTS = SITE_CONFIG / "performance-results.json"
COLLECTION = "selfhosted.github_runners"


def sources() -> list[pathlib.Path]:
    """The files of the site, relative to docs/: the Markdown pages and the examples beside them."""
    return sorted(p.relative_to(DOCS) for p in DOCS.rglob("*") if p.is_file() and SITE_CONFIG not in p.parents)


def pages() -> list[pathlib.Path]:
    """The Markdown pages of the site, relative to docs/."""
    return [p for p in sources() if p.suffix == ".md"]


def stage(collections: pathlib.Path, diagrams: pathlib.Path, src: pathlib.Path) -> None:
    if src.exists():
        shutil.rmtree(src)
    reference = src / "collection"
    reference.mkdir(parents=True)
    reference.chmod(0o755)  # antsibull-docs refuses a destination others can write to
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(collections.resolve())}
    subprocess.run(
        ["antsibull-docs", "--config-file", str(SITE_CONFIG / "antsibull-docs.cfg"), "collection",
         "--use-current", "--squash-hierarchy", "--fail-on-error", "--dest-dir", str(reference), COLLECTION],
        check=True, env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    shutil.copyfile(SITE_CONFIG / "index.rst", src / "index.rst")
    for source in sources():
        (src / source).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DOCS / source, src / source)
    shutil.copytree(diagrams, src / "_diagrams")
    from tests.bench.plot import plot_latencies

    plot_latencies(json.loads(BENCH_RESULTS.read_text()), src / "_plots")


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    collections, diagrams, out = (pathlib.Path(arg) for arg in argv)
    stage(collections, diagrams, out / "src")
    html = out / "html"
    if html.exists():
        shutil.rmtree(html)
    args = ["sphinx-build", "--quiet", "--fail-on-warning", "--keep-going", "--builder", "html"]
    proc = subprocess.run([*args, "--conf-dir", str(SITE_CONFIG), str(out / "src"), str(html)], check=False)
    if proc.returncode:
        return proc.returncode
    print(f"documentation site: {html / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
