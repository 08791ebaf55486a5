"""Command line: `python -m app COMMAND`; each command module in app/commands registers its own parser."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description="Telemetry Mini Service")
    commands = parser.add_subparsers(dest="command", required=True)

    from app.commands import export, hash_key, report, serve, simulate

    for command in (serve, hash_key, simulate, report, export):
        command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = args.handler
    return int(handler(args))
