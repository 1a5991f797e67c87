"""The browser and the Mermaid renderer of the documentation build, installed outside the repository.

- Chromium is Debian's `chromium` package, installed with apt-get when it is missing
  (as root, or through sudo): no browser is ever downloaded by puppeteer.
- `@mermaid-js/mermaid-cli` comes from the npm registry at the versions that
  `tests/docs/mermaid-cli/package-lock.json` pins, installed with `npm ci` into
  ``$GHR_CACHE_DIR/mermaid-cli-<hash of the lockfile>`` (with PUPPETEER_SKIP_DOWNLOAD=1),
  next to a puppeteer config that points it at Debian's chromium.

Usage: python -m tests.utils.docs_tools install
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE_DIR = ROOT / "tests" / "docs" / "mermaid-cli"
LOCKFILE = PACKAGE_DIR / "package-lock.json"
CHROMIUM_PACKAGES = ["chromium", "fonts-liberation"]
# Root in a container has no user namespace for Chromium's sandbox; the pages are our own.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]


def cache_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("GHR_CACHE_DIR") or pathlib.Path.home() / ".cache" / "ghr")


def mermaid_cli_dir() -> pathlib.Path:
    """Where the pinned Mermaid CLI lives: a new directory whenever the lockfile changes."""
    digest = hashlib.sha256(LOCKFILE.read_bytes()).hexdigest()[:12]
    return cache_dir() / f"mermaid-cli-{digest}"


def mmdc() -> pathlib.Path:
    return mermaid_cli_dir() / "node_modules" / ".bin" / "mmdc"


def puppeteer_config() -> pathlib.Path:
    return mermaid_cli_dir() / "puppeteer-config.json"


def chromium() -> str:
    """The path of Debian's chromium; raises with the fix when it is not installed."""
    found = shutil.which("chromium")
    if found is None:
        raise FileNotFoundError("chromium is not installed: run `make docs-tools` (installs Debian's chromium package)")
    return found


def ensure_chromium() -> str:
    if shutil.which("chromium") is None:
        if shutil.which("apt-get") is None:
            raise FileNotFoundError("chromium is not installed and there is no apt-get: install Chromium as `chromium`")
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        print("docs tools: installing Debian's chromium package", file=sys.stderr)
        subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(
            [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *CHROMIUM_PACKAGES],
            check=True,
            env=env,
        )
    return chromium()


def ensure_mermaid_cli(browser: str) -> pathlib.Path:
    target = mermaid_cli_dir()
    if not (target / "node_modules" / ".bin" / "mmdc").exists():
        if shutil.which("npm") is None:
            raise FileNotFoundError("npm is required for the documentation check (Node.js, see README)")
        target.parent.mkdir(parents=True, exist_ok=True)
        # Installed beside the target and renamed at the end, so a broken install is never used.
        work = pathlib.Path(tempfile.mkdtemp(dir=target.parent, prefix=".mermaid-cli-"))
        try:
            for name in ("package.json", "package-lock.json"):
                shutil.copyfile(PACKAGE_DIR / name, work / name)
            env = {**os.environ, "PUPPETEER_SKIP_DOWNLOAD": "1"}
            print(f"docs tools: npm ci into {target}", file=sys.stderr)
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=work, check=True, env=env)
            shutil.rmtree(target, ignore_errors=True)
            work.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    config = {"executablePath": browser, "args": CHROMIUM_ARGS}
    puppeteer_config().write_text(json.dumps(config, indent=2) + "\n")
    return mmdc()


def main(argv: list[str]) -> int:
    if argv != ["install"]:
        print(__doc__, file=sys.stderr)
        return 2
    browser = ensure_chromium()
    print(f"chromium: {browser}\nmmdc: {ensure_mermaid_cli(browser)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
