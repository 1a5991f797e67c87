"""Finding the Mermaid blocks of Markdown pages and rendering them with the pinned Mermaid CLI."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

from tests.utils import docs_tools
from tests.utils.render_mermaid import diagram_key, extract, png_size, render

GOOD = "flowchart LR\n    accTitle: two boxes\n    a --> b"
BAD = "flowchart LR\n    a --> b -->"


def test_blocks_are_found_with_their_lines_and_sources(tmp_path: pathlib.Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n```mermaid\nflowchart LR\n  a --> b\n```\n\n```python\nprint('not a diagram')\n```\n\n"
        "~~~~ mermaid\nsequenceDiagram\n  A->>B: hi\n  ```\n~~~~\n"
    )
    blocks = extract(page)
    assert [(b.line, b.source) for b in blocks] == [
        (3, "flowchart LR\n  a --> b"),
        (12, "sequenceDiagram\n  A->>B: hi\n  ```"),  # a shorter or other fence does not close it
    ]


def test_an_unclosed_block_is_an_error(tmp_path: pathlib.Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("text\n```mermaid\nflowchart LR\n")
    with pytest.raises(ValueError, match=re.escape("page.md:2: mermaid block is never closed")):
        extract(page)


def test_the_image_name_does_not_depend_on_blank_lines_or_trailing_spaces() -> None:
    assert diagram_key("\nflowchart LR  \n  a --> b\n\n") == diagram_key("flowchart LR\n  a --> b")
    assert diagram_key("flowchart LR\n  a --> b") != diagram_key("flowchart LR\n  a --> c")


def test_every_block_renders_to_a_png_until_one_does_not_parse(tmp_path: pathlib.Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(f"```mermaid\n{GOOD}\n```\n\ntext\n\n```mermaid\n{BAD}\n```\n")
    out = tmp_path / "out"
    errors = render(extract(page), out, docs_tools.mmdc(), docs_tools.puppeteer_config())
    assert len(errors) == 1
    assert errors[0].startswith(f"{page}:9: mermaid block does not render:"), errors
    assert "Parse error" in errors[0]
    rendered = out / f"{diagram_key(GOOD)}.png"
    width, height = png_size(rendered)
    assert width > 0 and height > 0
    assert sorted(out.iterdir()) == [rendered]


def test_the_command_fails_on_a_bad_block_and_names_it(tmp_path: pathlib.Path) -> None:
    bad, good = tmp_path / "bad.md", tmp_path / "good.md"
    bad.write_text(f"```mermaid\n{BAD}\n```\n")
    good.write_text(f"```mermaid\n{GOOD}\n```\n")
    command = [sys.executable, "-m", "tests.utils.render_mermaid", str(tmp_path / "out"), str(good), str(bad)]
    failed = subprocess.run(command, cwd=docs_tools.ROOT, capture_output=True, text=True, check=False)
    assert failed.returncode == 1
    assert f"{bad}:1: mermaid block does not render" in failed.stderr
