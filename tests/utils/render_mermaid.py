"""Render every Mermaid block of the given Markdown files to PNG; fail on any parse or render error.

Each ```mermaid fence becomes OUT/<key>.png, where <key> is `diagram_key` of the
block's source: the Sphinx extension in docs/site finds the image of a block by
the same key. All blocks go through one mmdc run (one browser start); mmdc stops
at the first block it cannot render, and that block is named with its file and line.

Usage: python -m tests.utils.render_mermaid OUT FILE.md...
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
import shutil
import struct
import subprocess
import sys
import tempfile

from tests.utils import docs_tools

# How a block names its image is defined once, by the Sphinx extension that looks the images up.
sys.path.insert(0, str(docs_tools.ROOT / "docs" / "site"))
from mermaid_images import alt_text, diagram_key

sys.path.pop(0)
__all__ = ["Block", "alt_text", "diagram_key", "extract", "render"]

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*mermaid\s*$")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: How the site's images are drawn (GitHub draws the same blocks with its own settings).
MERMAID_CONFIG = docs_tools.ROOT / "docs" / "site" / "mermaid-config.json"


@dataclasses.dataclass(frozen=True)
class Block:
    path: pathlib.Path
    line: int  # of the opening fence, 1-based
    source: str

    @property
    def key(self) -> str:
        return diagram_key(self.source)

    def where(self) -> str:
        return f"{self.path}:{self.line}"


def extract(path: pathlib.Path) -> list[Block]:
    """The Mermaid blocks of a Markdown file, in order; an unclosed fence is an error."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        index += 1
        if opening is None:
            continue
        start, fence, body = index, opening["fence"], []
        while index < len(lines) and not _closes(lines[index], fence):
            body.append(lines[index])
            index += 1
        if index == len(lines):
            raise ValueError(f"{path}:{start}: mermaid block is never closed")
        index += 1
        blocks.append(Block(path, start, "\n".join(body)))
    return blocks


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return stripped.startswith(fence[0] * len(fence)) and set(stripped) == {fence[0]}


def png_size(path: pathlib.Path) -> tuple[int, int]:
    """Width and height from a PNG's header; (0, 0) when it is not a PNG."""
    head = path.read_bytes()[:24]
    if len(head) < 24 or not head.startswith(_PNG_SIGNATURE):
        return (0, 0)
    width, height = struct.unpack(">II", head[16:24])
    return (width, height)


def render(blocks: list[Block], out: pathlib.Path, mmdc: pathlib.Path, puppeteer_config: pathlib.Path) -> list[str]:
    """Render `blocks` into OUT; returns the errors (empty when every block rendered)."""
    if not mmdc.exists():
        raise FileNotFoundError(f"no Mermaid CLI at {mmdc}: run `make docs-tools`")
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.png"):
        stale.unlink()
    if not blocks:
        return []
    with tempfile.TemporaryDirectory(prefix="mermaid-") as work_dir:
        work = pathlib.Path(work_dir)
        (work / "in.md").write_text("".join(f"```mermaid\n{b.source}\n```\n\n" for b in blocks), encoding="utf-8")
        args = [str(mmdc), "--puppeteerConfigFile", str(puppeteer_config), "--quiet"]
        args += ["--input", str(work / "in.md"), "--output", str(work / "out.md"), "--outputFormat", "png"]
        args += ["--configFile", str(MERMAID_CONFIG), "--scale", "2", "--backgroundColor", "white"]
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
        errors = []
        for number, block in enumerate(blocks, start=1):
            image = work / f"out-{number}.png"
            if not image.exists() or 0 in png_size(image):
                message = _mermaid_error(proc.stderr) if proc.returncode else "mmdc wrote no image"
                errors.append(f"{block.where()}: mermaid block does not render: {message}")
                break  # mmdc stops at the first failure: later blocks were not tried
            shutil.move(image, out / f"{block.key}.png")
        if proc.returncode and not errors:
            errors.append(f"mmdc failed: {_mermaid_error(proc.stderr)}")
    return errors


def _mermaid_error(stderr: str) -> str:
    # Mermaid's message without the browser-side stack trace.
    lines = [line for line in stderr.strip().splitlines() if not line.lstrip().startswith(("at ", "Parser."))]
    return "\n    ".join(lines[-8:]) or "no message"


def main(argv: list[str]) -> int:
    if len(argv) < 1:
        print(__doc__, file=sys.stderr)
        return 2
    out, paths = pathlib.Path(argv[0]), [pathlib.Path(p) for p in argv[1:]]
    try:
        blocks = [block for path in paths for block in extract(path)]
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    errors = render(blocks, out, docs_tools.mmdc(), docs_tools.puppeteer_config())
    for error in errors:
        print(error, file=sys.stderr)
    if not errors:
        print(f"rendered {len(blocks)} mermaid blocks of {len(paths)} files into {out}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
