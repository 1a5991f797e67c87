"""Offline stand-in for the pip bootstrap script that ansible-test downloads.

ansible-test creates its virtual environments without pip and runs a downloaded
get-pip script to bootstrap it. That download is not reachable from every build
host, so this script does the same job from the standard library: `ensurepip`
installs the bundled pip, which then installs the requested packages (pip itself
at ansible-test's pinned version) from the package index.
"""

from __future__ import annotations

import subprocess
import sys

IGNORED = {"--no-setuptools", "--no-wheel"}


def main() -> None:
    subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], check=True, stdout=subprocess.DEVNULL)
    args = [arg for arg in sys.argv[1:] if arg not in IGNORED]
    subprocess.run([sys.executable, "-m", "pip", "install", *args], check=True)


if __name__ == "__main__":
    main()
