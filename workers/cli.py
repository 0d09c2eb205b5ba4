"""The ``xreid`` console script: one parser, one module per subcommand under ``workers.commands``.

Subcommand modules only declare arguments at import time; the heavy imports (torch, OpenCV,
ultralytics) happen inside their ``run`` so ``xreid --help`` stays instant.
Errors the project raises on purpose (``XreidError``) print one line and exit 2; anything else
is a bug and keeps its traceback (exit 1).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from models.errors import XreidError

# Order is the order of `xreid --help`.
COMMAND_MODULES: tuple[str, ...] = (
    "demo",
    "replay",
    "camera",
    "reid_worker",
    "matcher",
    "eval_tracking",
    "up",
    "synth",
    "train",
    "adapt",
    "reembed",
    "eval",
    "serve",
    "tracks",
    "identity",
    "search",
    "calibrate",
    "calibration",
    "watch",
    "store",
    "forget",
    "audit",
    "retention",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xreid",
        description="Follow people across RGB and thermal cameras with X-ReID.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"workers.commands.{name}").register(sub)
    return parser


def setup_logging(verbosity: int) -> None:
    level = logging.WARNING - 10 * verbosity
    env_level = os.environ.get("XREID_LOG_LEVEL")
    if env_level:
        level = getattr(logging, env_level.upper(), level)
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    # the pool logs every failed reconnect of every slot; the store reports an outage itself, rate-limited
    logging.getLogger("psycopg.pool").setLevel(max(level, logging.ERROR))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    setup_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except XreidError as e:
        print(f"xreid {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"xreid {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`xreid tracks | head`): not an error; silence the flush at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
