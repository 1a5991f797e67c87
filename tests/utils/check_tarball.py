"""Fail when the built collection tarball ships test code, caches or anything else users do not need."""

from __future__ import annotations

import pathlib
import sys
import tarfile

#: What a collection tarball of ours may hold at its top level.
ALLOWED_TOP = {"MANIFEST.json", "FILES.json", "README.md", "requirements.txt", "meta", "plugins", "roles", "playbooks",
               "changelogs", "docs", "LICENSE", "COPYING"}  # fmt: skip


def unexpected(tarball: pathlib.Path) -> list[str]:
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    return sorted(name for name in names if name.split("/")[0] not in ALLOWED_TOP or "__pycache__" in name.split("/"))


def main(argv: list[str]) -> int:
    bad = [name for path in argv for name in unexpected(pathlib.Path(path))]
    if bad:
        print("the collection tarball holds files users do not need:", *bad[:20], sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
