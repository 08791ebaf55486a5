"""Data-lifecycle benchmark: import against simulate, Parquet export of a million events, ingest during retention.

1. `simulate --events N` into an empty file, `export` it, `import` the export into another empty file:
   the import's events/s over simulate's, in one run (wall and CPU time both).
2. `export --format parquet` of a store of --parquet-events events (default 1M; --parquet-db reuses a file):
   wall and CPU seconds, peak RSS, against the same export of a tenth of it (constant memory: same peak).
3. The service loaded with wrk (batches of 100) for --seconds, twice on copies of one file that holds
   --old-events events older than the retention period: without retention, then with
   TELEMETRY_RETENTION_DAYS set so a pass runs during the load. The ratio of the two ingest rates.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sqlite3
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.analysis_bench import run_measured
from bench.ingest_bench import BATCH, INSERT, Served, event_body, lua_script, median_run, run_wrk, service_rows


def _app(*args: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "app", *args]


def import_vs_simulate(folder: Path, events: int) -> dict[str, Any]:
    a, b = folder / "sim.db", folder / "imp.db"
    sim_s, _, sim_cpu = run_measured(_app("simulate", "--events", str(events), "--users", str(max(events // 50, 100)),
                                          "--days", "30", "--quiet", "--database-url", f"sqlite:///{a}"))  # fmt: skip
    ndjson = folder / "sim.ndjson"
    run_measured(_app("export", "--database-url", f"sqlite:///{a}", "--out", str(ndjson)))
    imp_s, imp_peak, imp_cpu = run_measured(_app("import", str(ndjson), "--quiet", "--database-url", f"sqlite:///{b}"))
    return {
        "events": events,
        "simulate_events_per_s": round(events / sim_s),
        "import_events_per_s": round(events / imp_s),
        "ratio_wall": round(sim_s / imp_s, 2),
        "simulate_cpu_us_per_event": round(sim_cpu / events * 1e6, 1),
        "import_cpu_us_per_event": round(imp_cpu / events * 1e6, 1),
        "ratio_cpu": round(sim_cpu / imp_cpu, 2),
        "import_peak_rss_mb": round(imp_peak / 2**20),
    }


def parquet_export(folder: Path, events: int, db: Path | None) -> dict[str, Any]:
    if db is None:
        db = folder / "parquet-source.db"
        run_measured(_app("simulate", "--events", str(events), "--users", str(max(events // 50, 100)), "--days", "60",
                          "--workers", "2", "--quiet", "--database-url", f"sqlite:///{db}"))  # fmt: skip
    with sqlite3.connect(db) as conn:
        total = int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        tenth = conn.execute(
            "SELECT timestamp FROM events ORDER BY timestamp LIMIT 1 OFFSET ?", (total - total // 10,)
        ).fetchone()[0]
    out = folder / "events.parquet"
    full = run_measured(_app("export", "--format", "parquet", "--database-url", f"sqlite:///{db}", "--out", str(out)))
    size = out.stat().st_size
    part = run_measured(_app("export", "--format", "parquet", "--database-url", f"sqlite:///{db}",
                             "--since", tenth, "--out", str(out)))  # fmt: skip
    return {
        "events": total,
        "wall_s": round(full[0], 1),
        "cpu_s": round(full[2], 1),
        "peak_rss_mb": round(full[1] / 2**20),
        "file_mb": round(size / 2**20, 1),
        "tenth": {"events": total // 10, "wall_s": round(part[0], 1), "peak_rss_mb": round(part[1] / 2**20)},
    }


def _old_store(path: Path, count: int) -> None:
    from app.repository.sqlite import open_database

    open_database(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    rows = service_rows(count, datetime(2001, 1, 1, tzinfo=UTC))
    conn.execute("BEGIN")
    conn.executemany(INSERT, rows)
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:  # noqa: S310 (loopback)
        text = response.read().decode()
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def ingest_during_retention(folder: Path, old_events: int, seconds: float, rounds: int, chunk: str) -> dict[str, Any]:
    """Both servers up at once on copies of one file, loaded in turn, round by round: the medians compare
    like with like on a machine whose load changes by the minute."""
    base = folder / "old.db"
    _old_store(base, old_events)
    script = folder / "batch.lua"
    script.write_text(lua_script(json.dumps({"events": [event_body(n) for n in range(BATCH)]}).encode()))
    servers: dict[str, Served] = {}
    runs: dict[str, list[Any]] = {"without": [], "during_retention": []}
    try:
        for name, env in (
            ("without", {}),
            ("during_retention", {"TELEMETRY_RETENTION_DAYS": "30", "TELEMETRY_RETENTION_CHUNK_ROWS": chunk}),
        ):
            db = folder / f"{name}.db"
            shutil.copy(base, db)
            servers[name] = Served(name, ["-m", "app", "serve"], {"TELEMETRY_DATABASE_URL": f"sqlite:///{db}", **env})
        for _ in range(rounds):
            for name, server in servers.items():
                runs[name].append(run_wrk(server, "/v1/events/batch", script, seconds, BATCH, "batch"))
        removed = _metric(servers["during_retention"].url, "telemetry_retention_removed_total")
    finally:
        for server in servers.values():
            server.stop()
    result: dict[str, Any] = {}
    for name, measured in runs.items():
        run = median_run(measured)
        result[name] = {"events_per_s": round(run.events_per_s), "p99_ms": run.p99_ms, "errors": run.errors,
                        "cpu_us_per_event": round(run.cpu_us_per_event, 1),
                        "rounds": [round(r.events_per_s) for r in measured]}  # fmt: skip
    result["ratio"] = round(result["during_retention"]["events_per_s"] / result["without"]["events_per_s"], 2)
    result["retention_removed_during_the_rounds"] = int(removed)
    result["pass_outlasted_the_load"] = removed < old_events
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--import-events", type=int, default=200_000)
    parser.add_argument("--parquet-events", type=int, default=1_000_000)
    parser.add_argument("--parquet-db", type=Path, default=None, help="reuse a store instead of simulating one")
    parser.add_argument("--old-events", type=int, default=300_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="per round of the ingest load")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunk-rows", default="1000", help="TELEMETRY_RETENTION_CHUNK_ROWS of the pass")
    parser.add_argument("--skip", action="append", default=[], choices=("import", "parquet", "retention"))
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="lifecycle-bench-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        if "import" not in args.skip:
            results["import_vs_simulate"] = import_vs_simulate(folder, args.import_events)
            print(json.dumps({"import_vs_simulate": results["import_vs_simulate"]}), flush=True)
        if "parquet" not in args.skip:
            results["parquet_export"] = parquet_export(folder, args.parquet_events, args.parquet_db)
            print(json.dumps({"parquet_export": results["parquet_export"]}), flush=True)
        if "retention" not in args.skip:
            results["ingest_during_retention"] = ingest_during_retention(
                folder, args.old_events, args.seconds, args.rounds, args.chunk_rows
            )
            print(json.dumps({"ingest_during_retention": results["ingest_during_retention"]}), flush=True)
        results["seconds"] = round(time.perf_counter() - started)
    return results


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
