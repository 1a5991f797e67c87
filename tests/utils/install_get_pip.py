"""Put the offline pip bootstrap stand-in where ansible-test looks for its cached get-pip script."""

from __future__ import annotations

import pathlib
import shutil

from ansible_test._internal.python_requirements import get_venv_packages


class _Python:
    version = "3.11"


def main() -> None:
    pip_version = get_venv_packages(_Python())["pip"]  # type: ignore[arg-type]
    cache = pathlib.Path.home() / ".ansible" / "test" / "cache" / f"get_pip_{pip_version.replace('.', '_')}.py"
    cache.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pathlib.Path(__file__).with_name("get_pip_offline.py"), cache)
    print(f"pip bootstrap stand-in for pip {pip_version}: {cache}")


if __name__ == "__main__":
    main()
