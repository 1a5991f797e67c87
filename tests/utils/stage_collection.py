"""Copy the collection's files (those git tracks or would track) to DEST/ansible_collections/selfhosted/github_runners.

ansible-test needs the collection at that path; staging a copy keeps the
repository free of a self-referencing tree and of ansible-test's output.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def main() -> None:
    dest = pathlib.Path(sys.argv[1]) / "ansible_collections" / "selfhosted" / "github_runners"
    if dest.exists():
        shutil.rmtree(dest)
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for raw in listed:
        if not raw:
            continue
        rel = pathlib.Path(raw.decode())
        src = ROOT / rel
        if not src.is_file() or src.is_symlink():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    print(dest)


if __name__ == "__main__":
    main()
