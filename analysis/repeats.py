"""Events that share their user, action, source and timestamp with another event: the candidates the
probable-retries check reads the metadata of (analysis/quality.py), kept so that a run does not group every
event by those four columns again.

A filter on time, source or action keeps or drops all the events of one such group together (they share
those columns), so the kept rows answer those filters too; a metadata property does not, and reads the
events. With a cache (analysis/cache.py) the table is kept in the cache file and the groups of the keys new
rows (or rows a dead run left past the mark) carry are computed again; without one it is built on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

    from analysis.db import Database

TABLE = "repeated_events"

_CREATE = """
    CREATE TABLE {table} (seq BIGINT NOT NULL, user_id VARCHAR NOT NULL, action VARCHAR NOT NULL,
                          source VARCHAR NOT NULL, ts TIMESTAMP NOT NULL)
"""
# {events}' rows whose (user, action, source, ts) is held by another row too, among the keys {chosen}.
_REPEATED = """
    WITH twice AS (SELECT user_id, action, source, ts FROM {events} k WHERE {chosen} GROUP BY ALL HAVING COUNT(*) > 1)
    SELECT e.seq, e.user_id, e.action, e.source, e.ts FROM {events} e
    SEMI JOIN twice t ON t.user_id = e.user_id AND t.action = e.action AND t.source = e.source AND t.ts = e.ts
"""
_KEY = "(user_id, action, source, ts)"


def create_table(engine: duckdb.DuckDBPyConnection, table: str) -> None:
    engine.execute(_CREATE.format(table=table))


def fill(engine: duckdb.DuckDBPyConnection, table: str, events: str) -> None:
    """The repeated rows of engine table `events`, into the empty `table`."""
    engine.execute(f"INSERT INTO {table} {_REPEATED.format(events=events, chosen='TRUE')}")


def touched(engine: duckdb.DuckDBPyConnection, events: str, after_seq: int) -> None:
    """Note the keys of the rows of `events` past `after_seq` (added to those already noted) in temporary
    table touched_keys."""
    engine.execute(
        "CREATE TEMPORARY TABLE IF NOT EXISTS touched_keys "
        "(user_id VARCHAR, action VARCHAR, source VARCHAR, ts TIMESTAMP)"
    )
    engine.execute(
        f"INSERT INTO touched_keys SELECT DISTINCT user_id, action, source, ts FROM {events} WHERE seq > ?",
        [after_seq],
    )


def refresh_touched(engine: duckdb.DuckDBPyConnection, table: str, events: str) -> None:
    """Compute the groups of the noted keys again from `events`, and forget the notes."""
    chosen = f"{_KEY} IN (SELECT {_KEY} FROM touched_keys)"
    engine.execute(f"DELETE FROM {table} WHERE {chosen}")
    engine.execute(f"INSERT INTO {table} {_REPEATED.format(events=events, chosen=chosen)}")
    engine.execute("DROP TABLE touched_keys")


def table_for(db: Database) -> str:
    """The repeated events of the engine: the cache file's, or a table built in memory on first use."""
    return db.kept_table(TABLE, create_table, fill)
