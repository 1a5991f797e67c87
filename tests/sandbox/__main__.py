"""python -m tests.sandbox up|down|status|serve --dir DIR [--seed N]"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

from tests.sandbox import launcher


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.sandbox", description="Local OpenStack and GitHub simulators."
    )
    parser.add_argument("command", choices=("up", "down", "status", "serve"))
    parser.add_argument(
        "--dir", required=True, type=pathlib.Path, help="sandbox directory (clouds.yaml, env, pid, logs)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault schedule and simulated ids")
    parser.add_argument("--timeout", type=float, default=300.0, help="up: seconds to wait for the sandbox to answer")
    parser.add_argument("--without-mongodb", action="store_true", help="do not start MongoDB (MONGODB_URI stays empty)")
    args = parser.parse_args(argv)
    workdir: pathlib.Path = args.dir.resolve()
    mongodb = not args.without_mongodb

    if args.command == "serve":
        return launcher.serve_forever(workdir, args.seed, mongodb)
    if args.command == "up":
        started = time.monotonic()
        try:
            proc = launcher.up(workdir, args.seed, args.timeout, mongodb)
        except RuntimeError as exc:
            print(f"sandbox: {exc}", file=sys.stderr)
            return 1
        env_file = workdir / launcher.ENV_FILE
        if proc is None:
            print(f"sandbox: already running in {workdir}")
        else:
            print(f"sandbox: up in {time.monotonic() - started:.2f}s (pid {proc.pid})")
        for line in env_file.read_text().splitlines():
            if line.startswith("#"):
                print(f"sandbox: note: {line[1:].strip()}")
        print(f"Use it from a shell:\n  set -a; . {env_file}; set +a\n  openstack server list")
        return 0
    if args.command == "down":
        stopped = launcher.down(workdir)
        print("sandbox: stopped" if stopped else "sandbox: was not running")
        return 0
    info = launcher.status(workdir)
    if not info["running"]:
        print(f"sandbox: not running ({workdir})")
        return 3
    env = info.get("env", {})
    print(f"sandbox: running, pid {info['pid']}, {'answering' if info.get('answers') else 'NOT answering'}")
    print(json.dumps({k: v for k, v in env.items() if k.endswith(("_URL", "_URI", "_FILE", "CLOUD"))}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
