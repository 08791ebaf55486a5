"""The bulk read: the store's events into one DuckDB table, as Arrow batches, a few seq ranges at once.

The engine keeps only what the analyses read per event: seq, user, action, source, event time, receipt
time, whether sent_at is missing, the session id (from metadata) and whether metadata is empty. Metadata
text stays in the store: the analyses that need more of it (a property's values, a sample per action)
fetch just those rows (analysis/properties.py), so memory follows the event count, not its metadata size.

Why this path: on SQLite a full scan through the sqlite3 module costs a Python object per value; ADBC
fills Arrow buffers in C and DuckDB ingests them without a copy per value. Each seq range has its own
connection and thread (the drivers release the GIL), so the read uses every core the machine gives it.
See docs/benchmarks.md for the measured alternatives.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import duckdb

if TYPE_CHECKING:
    from analysis.db import Database

# Threads reading the store at once; the store and the engine share the same cores, so more buys nothing.
MAX_READERS = 4
# Below this many rows one reader is faster than starting several.
ROWS_PER_READER = 200_000
# DuckDB keeps what is over its limit in a private temp directory (the events table included), so the
# engine's resident memory stays about this size however many events there are: 5 million events take
# ~430 MB as a table, ~100 of them then spilled. Measured in docs/benchmarks.md.
ENGINE_MEMORY_LIMIT = "384MB"
# Rows one query reads: the PostgreSQL driver holds a whole result in memory before it hands batches on
# (1M rows: 600 MB), so each reader asks for seq ranges of this size, one after the other.
CHUNK_ROWS = 100_000
# How long a reader of a SQLite store waits for a lock another connection holds for a moment (WAL recovery,
# a checkpoint of the live service) before it gives up; the sqlite3 module's own default is 5 s.
SQLITE_BUSY_TIMEOUT_MS = 5_000

_CREATE = """
    CREATE TABLE events (
        seq BIGINT NOT NULL, user_id VARCHAR NOT NULL, action VARCHAR NOT NULL, source VARCHAR NOT NULL,
        ts TIMESTAMP NOT NULL, received TIMESTAMP NOT NULL, no_sent_at BOOLEAN NOT NULL,
        session_id VARCHAR, metadata_empty BOOLEAN NOT NULL)
"""

_INSERT = """
    INSERT INTO {table}
    SELECT seq, user_id, action, source, {timestamp}, {received_at}, no_sent_at::BOOLEAN,
           json_extract_string(metadata, '$.session_id'), metadata = '{{}}'
    FROM batches
"""


def _adbc_connect(db: Database) -> Any:
    if db.backend == "sqlite":
        import adbc_driver_sqlite.dbapi

        sqlite_connection = adbc_driver_sqlite.dbapi.connect(db.adbc_uri)
        # The driver sets no busy timeout: a connection opened while another reader takes its WAL lock
        # fails at once with "database is locked" (seen in 1 read of 50 with four readers at once).
        with sqlite_connection.cursor() as cursor:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.fetchall()
        return sqlite_connection
    import adbc_driver_postgresql.dbapi

    connection = adbc_driver_postgresql.dbapi.connect(db.adbc_uri)
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    return connection


@contextlib.contextmanager
def store_batches(db: Database, query: str, params: tuple[Any, ...]) -> Iterator[Any]:
    """The rows of one store query as an Arrow RecordBatchReader, on a connection of its own."""
    store = _adbc_connect(db)
    try:
        with store.cursor() as cursor:
            cursor.execute(query, params)
            yield cursor.fetch_record_batch()
    finally:
        store.close()


def _read_range(
    db: Database, engine: duckdb.DuckDBPyConnection, table: str, low: int, high: int, errors: list[BaseException]
) -> None:
    insert = _INSERT.format(
        table=table,
        timestamp=db.sql.engine_time.format(column="timestamp"),
        received_at=db.sql.engine_time.format(column="received_at"),
    )
    try:
        for start in range(low, high, CHUNK_ROWS):
            with store_batches(db, db.sql.events_between, (start, min(start + CHUNK_ROWS, high))) as batches:
                local = engine.cursor()
                try:
                    local.register("batches", batches)
                    local.execute(insert)
                finally:
                    local.close()
    except BaseException as exc:  # re-raised in the calling thread
        errors.append(exc)


def new_engine(spill_directory: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the engine's settings; what exceeds the memory limit goes to
    spill_directory (never the working directory)."""
    engine = duckdb.connect(":memory:")
    engine.execute(f"SET memory_limit = '{ENGINE_MEMORY_LIMIT}'")
    engine.execute("SET temp_directory = ?", [spill_directory])
    engine.execute("SET TimeZone = 'UTC'")
    return engine


def create_events_table(engine: duckdb.DuckDBPyConnection, table: str = "events") -> None:
    engine.execute(_CREATE.replace("CREATE TABLE events", f"CREATE TABLE {table}"))


def store_bounds(db: Database) -> tuple[int, int]:
    """The store's first and last seq now (0, 0 when it is empty)."""
    first, last = (int(v) for v in db.store_rows(db.sql.seq_bounds)[0])
    return first, last


def read_events(db: Database, engine: duckdb.DuckDBPyConnection, table: str, first: int, last: int) -> None:
    """Append the store's events with first <= seq <= last to engine table `table`, a few seq ranges at once."""
    rows = last - first + 1 if last >= first > 0 else 0
    if not rows:
        return
    readers = max(1, min(MAX_READERS, os.cpu_count() or 1, rows // ROWS_PER_READER))
    bounds = [first + rows * i // readers for i in range(readers + 1)]
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_read_range, args=(db, engine, table, bounds[i], bounds[i + 1], errors), daemon=True)
        for i in range(readers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def load_events(db: Database, spill_directory: str) -> tuple[duckdb.DuckDBPyConnection, int]:
    """A new in-memory DuckDB connection holding every stored event in its `events` table, and the last seq
    it holds."""
    engine = new_engine(spill_directory)
    try:
        create_events_table(engine)
        first, last = store_bounds(db)
        read_events(db, engine, "events", first, last)
    except BaseException:
        engine.close()
        raise
    return engine, last
