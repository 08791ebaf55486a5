"""`python -m bench`: the ingestion benchmark first, then every other bench/*_bench.py module's main().

Each module's `main(argv)` prints its own report; a module that is absent is simply not run, and one that
fails does not stop the others. `--only=NAME` (repeatable) runs just those. Every other argument goes only
to the benchmarks whose `build_parser()` declares it (`--rounds 3` reaches those that have rounds, not the
others); an argument that no benchmark declares is an error before anything runs. `--help` lists them all.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

FIRST = "ingest_bench"


def bench_modules() -> list[str]:
    names = sorted(p.stem for p in Path(__file__).parent.glob("*_bench.py"))
    return ([FIRST] if FIRST in names else []) + [n for n in names if n != FIRST]


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {
        option: action
        for action in parser._actions  # argparse has no public list of its options
        for option in action.option_strings
        if option not in {"-h", "--help"}
    }


def routed(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[list[str], set[str]]:
    """The part of argv that `parser` declares (each option with its values), and the options it took."""
    known = _options(parser)
    mine: list[str] = []
    taken: set[str] = set()
    i = 0
    while i < len(argv):
        token = argv[i]
        option, inline = token.split("=", 1)[0], "=" in token
        action = known.get(option) if token.startswith("-") else None
        if action is None:  # another benchmark's: skip it, and its value when it seems to have one
            has_value = token.startswith("-") and not inline and i + 1 < len(argv) and not argv[i + 1].startswith("-")
            i += 2 if has_value else 1
            continue
        width = 1 if inline or action.nargs == 0 else 2
        mine.extend(argv[i : i + width])
        taken.add(option)
        i += width
    return mine, taken


def plan(argv: list[str]) -> dict[str, list[str]]:
    """Which benchmarks run, each with its own arguments; SystemExit(2) for an argument none declares."""
    only = {a.split("=", 1)[1] for a in argv if a.startswith("--only=")}
    argv = [a for a in argv if not a.startswith("--only=")]
    unknown = {a.split("=", 1)[0] for a in argv if a.startswith("-")}
    planned: dict[str, list[str]] = {}
    for name in bench_modules():
        module = _load(name)
        build = getattr(module, "build_parser", None) if module is not None else None
        mine, taken = routed(build(), argv) if build is not None else ([], set())
        unknown -= taken
        if not only or name in only:
            planned[name] = mine
    if unknown:
        print(f"python -m bench: no benchmark takes {', '.join(sorted(unknown))} (see --help)", file=sys.stderr)
        raise SystemExit(2)
    return planned


def _load(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"bench.{name}")
    except Exception:  # reported when it is run; its arguments count as nobody's
        return None


def usage() -> str:
    parts = [__doc__ or "", f"benchmarks, in order: {', '.join(bench_modules())}"]
    for name in bench_modules():
        module = _load(name)
        build = getattr(module, "build_parser", None) if module is not None else None
        if build is not None:
            parts.append(f"\n== {name}\n{build().format_help()}")
    return "\n".join(parts)


def run(argv: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, args in plan(argv).items():
        print(f"== bench.{name} {' '.join(args)}".rstrip(), flush=True)
        try:
            module = importlib.import_module(f"bench.{name}")
            main = module.main
            results[name] = main(args) if inspect.signature(main).parameters else main()
        except (Exception, SystemExit):  # one benchmark's failure (or argparse exit) must not stop the others
            traceback.print_exc()
            results[name] = {"error": traceback.format_exc(limit=1)}
    return results


if __name__ == "__main__":
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(usage())
        sys.exit(0)
    outcome = run(sys.argv[1:])
    sys.exit(1 if any(isinstance(r, dict) and "error" in r for r in outcome.values()) else 0)
