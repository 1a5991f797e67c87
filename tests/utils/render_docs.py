"""Render the documentation of every module and role from an installed copy of the collection.

Fails when ansible-doc fails or prints nothing for any of them, or when the
installed copy has no modules or roles (a packaging mistake).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

FQCN = "selfhosted.github_runners"


def main() -> None:
    installed = pathlib.Path(sys.argv[1]).resolve()
    root = installed / "ansible_collections" / "selfhosted" / "github_runners"
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(installed)}
    modules = sorted(p.stem for p in (root / "plugins" / "modules").glob("*.py") if not p.stem.startswith("_"))
    roles = sorted(p.name for p in (root / "roles").iterdir() if (p / "meta" / "argument_specs.yml").exists())
    if not modules and not roles:
        sys.exit(f"no modules or roles with docs found in {root}")
    failures = []
    for kind, names in (("module", modules), ("role", roles)):
        for name in names:
            fqcn = f"{FQCN}.{name}"
            args = ["ansible-doc", "--type", kind, "--json", fqcn]
            proc = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
            ok = proc.returncode == 0 and fqcn in json.loads(proc.stdout or "{}")
            if ok:
                # Also the text rendering users read.
                text = subprocess.run([*args[:3], fqcn], env=env, capture_output=True, text=True, check=False)
                ok = text.returncode == 0 and bool(text.stdout.strip())
            print(f"{'ok' if ok else 'FAILED'}: ansible-doc -t {kind} {fqcn}")
            if not ok:
                failures.append(f"{fqcn}: {proc.stderr.strip()[-2000:]}")
    if failures:
        sys.exit("ansible-doc failed:\n" + "\n".join(failures))


if __name__ == "__main__":
    main()
