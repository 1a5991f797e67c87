# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The reactive consumer's entry point::

    python -m ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.consumer_service \
        --config /etc/github-runners/reactive-consumer.yml [--check]

`--check` validates the configuration (secret files included) without connecting anywhere:
exit 0, or the error on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import sys
import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import ConfigError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.consumer_config import load_settings


def main(argv: t.Optional[t.Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="reactive-consumer", description="Spawn one runner per queued job.")
    parser.add_argument("--config", required=True, help="the YAML configuration file")
    parser.add_argument("--check", action="store_true", help="validate the configuration and exit")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        sys.stderr.write(f"reactive-consumer: {args.config}: {exc}\n")
        return 2
    if args.check:
        sys.stdout.write(f"configuration OK: {len(settings.pools)} pools\n")
        return 0
    sys.stderr.write("reactive-consumer: only --check is available in this version\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
