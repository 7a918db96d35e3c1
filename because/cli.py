"""The `because` command: one entry point, subcommands registered by each side.

Training commands come from `models.cli`, serving commands from `service.cli`; each side
imports its heavy dependencies only when its command runs.
"""

from __future__ import annotations

import argparse
import logging
import sys

from models import cli as model_cli
from service import cli as service_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="because", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)
    model_cli.register(commands)
    service_cli.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
