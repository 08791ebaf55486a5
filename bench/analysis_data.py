"""Benchmark data for the analysis: a simulated SQLite store copied, row for row and in seq order, into a
PostgreSQL schema of the service's own layout (its migrations), by COPY.

    python -m bench.analysis_data SQLITE_PATH POSTGRES_URL

Simulating 5 million events through the PostgreSQL repository takes far longer than simulating them into
SQLite once; the copy gives PostgreSQL the very same events (same seq order, same metadata text), which
is what a SQLite/PostgreSQL comparison needs. SQLite writes each COPY text line itself (escaping
backslashes, tabs and newlines as COPY's text format wants), so Python only moves bytes.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time

from app.repository import postgres as pg_schema

_ESCAPE = "replace(replace(replace(replace({c}, '\\', '\\\\'), char(9), '\\t'), char(10), '\\n'), char(13), '\\r')"
_COLUMNS = ("event_id", "user_id", "action", "source", "timestamp", "received_at", "sent_at", "metadata")
_LINE = (
    " || char(9) || ".join(
        "coalesce(" + _ESCAPE.format(c=c) + ", '\\N')" if c == "sent_at" else _ESCAPE.format(c=c) for c in _COLUMNS
    )
    + " || char(9) || "
    + _ESCAPE.format(c="metadata")
    + " || char(10)"
)


def copy_store(sqlite_path: str, postgres_url: str, chunk: int = 20_000) -> int:
    """Copy every event; returns the number copied. The target schema must hold no events yet."""
    source = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    target = pg_schema.connect(postgres_url)
    pg_schema.migrate(target)
    found = target.execute("SELECT COUNT(*) FROM events").fetchone()
    if found and found[0]:
        raise SystemExit(f"{postgres_url} already holds {found[0]} events")
    copied = 0
    columns = ", ".join([*(f'"{c}"' for c in _COLUMNS), "metadata_text"])
    with target.cursor() as cursor, cursor.copy(f"COPY events ({columns}) FROM STDIN") as copy:
        rows = source.execute(f"SELECT {_LINE} FROM events ORDER BY seq")
        while batch := rows.fetchmany(chunk):
            copy.write("".join(line for (line,) in batch).encode())
            copied += len(batch)
    target.commit()
    target.execute("ANALYZE events")
    target.commit()
    target.close()
    source.close()
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.analysis_data", description=__doc__.split("\n")[0])
    parser.add_argument("sqlite_path")
    parser.add_argument("postgres_url")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    copied = copy_store(args.sqlite_path, args.postgres_url)
    print(f"copied {copied:,} events in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
