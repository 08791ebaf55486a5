"""The ways to get a store's events into the analysis engine, measured on the same data:

    python -m bench.analysis_engines DATABASE_URL [--runs 3]

* sqlite3 / psycopg rows -> pandas -> DuckDB: the DB-API path, one Python object per value.
* ADBC, one reader: Arrow batches straight into DuckDB.
* ADBC, N readers (what analysis.load does): seq ranges read by threads at once.

Each prints wall and CPU seconds (process, all threads) per run, and CPU microseconds per event.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

import duckdb
import pandas as pd

from analysis import connect
from analysis import load as loader
from analysis.db import Database


def _dbapi(db: Database) -> None:
    first, last = (int(v) for v in db.store_rows(db.sql.seq_bounds)[0])
    query = db.sql.events_between.replace("$1", "%s").replace("$2", "%s")
    rows = db.store_rows(query, (first, last + 1))
    columns = ["seq", "user_id", "action", "source", "timestamp", "received_at", "no_sent_at", "metadata"]
    frame = pd.DataFrame.from_records(rows, columns=columns)
    engine = duckdb.connect()
    engine.register("frame", frame)
    engine.execute("CREATE TABLE events AS SELECT * EXCLUDE (metadata) FROM frame")
    engine.close()


def _adbc(readers: int) -> Callable[[Database], None]:
    def run(db: Database) -> None:
        saved = loader.MAX_READERS
        loader.MAX_READERS = readers
        try:
            with tempfile.TemporaryDirectory() as spill:
                loader.load_events(db, spill)[0].close()
        finally:
            loader.MAX_READERS = saved

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.analysis_engines")
    parser.add_argument("database_url")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    ways: dict[str, Callable[[Database], None]] = {
        "DB-API rows -> pandas -> DuckDB": _dbapi,
        "ADBC Arrow, 1 reader": _adbc(1),
        f"ADBC Arrow, {loader.MAX_READERS} readers (cores permitting)": _adbc(loader.MAX_READERS),
    }
    with connect(args.database_url) as db:
        events = int(db.store_rows("SELECT COUNT(*) FROM events")[0][0])
        for name, way in ways.items():
            walls, cpus = [], []
            for _ in range(args.runs):
                started, cpu = time.perf_counter(), time.process_time()
                way(db)
                walls.append(time.perf_counter() - started)
                cpus.append(time.process_time() - cpu)
            wall, cpu_s = statistics.median(walls), statistics.median(cpus)
            print(f"{name:<48} wall {wall:6.2f} s  CPU {cpu_s:6.2f} s  {cpu_s / events * 1e6:5.2f} µs CPU/event")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
