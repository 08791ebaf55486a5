"""Command line: `python -m app COMMAND`; each command module in app/commands registers its own parser."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Sequence


def _shown_default(action: argparse.Action) -> str | None:
    """The default as a user would type it, or None when there is nothing worth showing."""
    if action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
        return None
    return str(action.default)


def _with_defaults(parser: argparse.ArgumentParser) -> None:
    """Every option's help says its default, whether or not its command wrote `%(default)s`."""
    for action in parser._actions:  # argparse offers no public way to list a parser's options
        default = _shown_default(action)
        if default is None or (action.help and "%(default)" in action.help):
            continue
        shown = default.replace("%", "%%")
        action.help = f"{action.help} (default: {shown})" if action.help else f"default: {shown}"


def _overview(commands: dict[str, argparse.ArgumentParser]) -> str:
    lines = ["every command and its options, defaults in brackets (`python -m app COMMAND --help` explains each):"]
    for name, parser in commands.items():
        options = []
        for action in parser._actions:
            if not action.option_strings or action.dest == "help":
                options.append(f"{action.metavar or action.dest}" if not action.option_strings else "")
                continue
            default = _shown_default(action)
            options.append(f"{action.option_strings[-1]} [{default}]" if default else action.option_strings[-1])
        text = " ".join(option for option in options if option)
        lines.append(textwrap.fill(text, width=110, initial_indent=f"  {name:<9} ", subsequent_indent=" " * 12))
    lines.append("settings: TELEMETRY_* environment variables, each with its default in docs/configuration.md")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app", description="Telemetry Mini Service", formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    from app.commands import erase, export, hash_key, import_events, report, retention, serve, simulate

    for command in (serve, hash_key, simulate, report, export, import_events, erase, retention):
        command.register(commands)
    for sub in commands.choices.values():
        _with_defaults(sub)
    parser.epilog = _overview(commands.choices)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = args.handler
    return int(handler(args))
