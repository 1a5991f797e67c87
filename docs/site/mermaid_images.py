# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sphinx extension: a ```mermaid block becomes the image the documentation check rendered for it.

The Markdown pages keep plain ```mermaid fences (GitHub draws those itself); MyST
hands each fence to the `mermaid` directive (``myst_fence_as_directive``), which
puts in the PNG that the renderer wrote as ``<mermaid_images_dir>/<diagram_key>.png``.
A block without its image is an error: the site never ships a diagram that did
not render. The alt text is the diagram's ``accTitle``.
"""

from __future__ import annotations

import hashlib
import pathlib
import re
import typing as t

_ACC_TITLE = re.compile(r"^\s*accTitle\s*:\s*(?P<title>.+?)\s*$", re.MULTILINE)


def normalized(source: str) -> str:
    """The block as both sides see it: no trailing spaces, no blank lines around it."""
    return "\n".join(line.rstrip() for line in source.splitlines()).strip("\n")


def diagram_key(source: str) -> str:
    """The name of a block's image, from its source alone."""
    return hashlib.sha256(normalized(source).encode("utf-8")).hexdigest()[:16]


def alt_text(source: str) -> str:
    found = _ACC_TITLE.search(source)
    return found["title"] if found else "diagram"


def setup(app: t.Any) -> t.Dict[str, t.Any]:
    # Sphinx and docutils are imported here only, so the functions above serve the renderer without them.
    from docutils import nodes
    from sphinx.util.docutils import SphinxDirective

    class MermaidImage(SphinxDirective):
        has_content = True

        def run(self) -> t.List[nodes.Node]:
            source = "\n".join(self.content)
            folder = str(self.config.mermaid_images_dir)
            relative = f"{folder}/{diagram_key(source)}.png"
            if not (pathlib.Path(self.env.srcdir) / relative).is_file():
                raise self.error(f"mermaid block has no rendered image {relative} (render the diagrams first)")
            self.env.note_dependency(relative)
            # Rendered at scale 2 for sharp text: shown at half its pixel size (at most the page's
            # width), and Sphinx links the image to its full-size file.
            image = nodes.image(uri=f"/{relative}", alt=alt_text(source), scale=50, classes=["mermaid-diagram"])
            return [image]

    app.add_config_value("mermaid_images_dir", "_diagrams", "env")
    app.add_directive("mermaid", MermaidImage)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
