"""`python -m bench`: the ingestion benchmark first, then every other bench/*_bench.py module's main().

Each module's `main(argv) -> dict` (or `main() -> dict`) prints its own report; a module that is absent
is simply not run, and one that fails does not stop the others. `--only=NAME` (repeatable) runs just those;
the other arguments go to every main that takes them (parse them with parse_known_args).
"""

from __future__ import annotations

import importlib
import inspect
import sys
import traceback
from pathlib import Path
from typing import Any

FIRST = "ingest_bench"


def bench_modules() -> list[str]:
    names = sorted(p.stem for p in Path(__file__).parent.glob("*_bench.py"))
    return ([FIRST] if FIRST in names else []) + [n for n in names if n != FIRST]


def run(argv: list[str]) -> dict[str, Any]:
    only = {a.split("=", 1)[1] for a in argv if a.startswith("--only=")}
    argv = [a for a in argv if not a.startswith("--only=")]
    results: dict[str, Any] = {}
    for name in bench_modules():
        if only and name not in only:
            continue
        print(f"== bench.{name}", flush=True)
        try:
            module = importlib.import_module(f"bench.{name}")
            main = module.main
            results[name] = main(argv) if inspect.signature(main).parameters else main()
        except (Exception, SystemExit):  # one benchmark's failure (or argparse exit) must not stop the others
            traceback.print_exc()
            results[name] = {"error": traceback.format_exc(limit=1)}
    return results


if __name__ == "__main__":
    outcome = run(sys.argv[1:])
    sys.exit(1 if any(isinstance(r, dict) and "error" in r for r in outcome.values()) else 0)
