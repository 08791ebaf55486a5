"""Per user-day rollups of the events: what the questions about active users, trends, retention, lifecycle
and stickiness read instead of every event, when their filter allows it.

One row per (user, UTC day, action, source): how many events, the first and last event time and receipt
time, and how many of them have no sent_at or empty metadata. A user's events of one day become one row
per action (the simulated 1M events: 207k rows), and every question above only ever asks which users were
active on which days, how many events they had and when a user's first event was. Retention by rolling
periods needs event times, not days: a day holds at most one period boundary (periods are 7 days long), so
the offsets of a day's events are exactly those of its first and last event.

The rollup is a pure function of the events table: with a cache (analysis/cache.py) it is kept in the cache
file and the days that new (or removed) rows touch are computed again from the events of those days, so it
always equals the aggregate of the copy; without one it is built on first use. A filter the rollup cannot
answer exactly (a metadata property, a time bound that is not a UTC midnight) or a breakdown by a metadata
property leaves the question on the events (`day_rows` returns None).
"""

from __future__ import annotations

from datetime import datetime, time
from typing import TYPE_CHECKING, Any

from analysis.filters import OTHER, Breakdown, Filter

if TYPE_CHECKING:
    import duckdb

    from analysis.db import Database

TABLE = "user_days"

# The aggregate itself, over any relation of events ({source}), restricted by {where}.
_ROLLUP = """
    SELECT user_id, date_trunc('day', ts) AS day, action, source, COUNT(*) AS events,
           MIN(ts) AS first_ts, MAX(ts) AS last_ts, MIN(received) AS first_received, MAX(received) AS last_received,
           COUNT(*) FILTER (WHERE no_sent_at) AS no_sent_at, COUNT(*) FILTER (WHERE metadata_empty) AS metadata_empty
    FROM {source} WHERE {where} GROUP BY ALL
"""

_CREATE = """
    CREATE TABLE {table} (
        user_id VARCHAR NOT NULL, day TIMESTAMP NOT NULL, action VARCHAR NOT NULL, source VARCHAR NOT NULL,
        events BIGINT NOT NULL, first_ts TIMESTAMP NOT NULL, last_ts TIMESTAMP NOT NULL,
        first_received TIMESTAMP NOT NULL, last_received TIMESTAMP NOT NULL, no_sent_at BIGINT NOT NULL,
        metadata_empty BIGINT NOT NULL)
"""


def create_table(engine: duckdb.DuckDBPyConnection, table: str) -> None:
    engine.execute(_CREATE.format(table=table))


def fill(engine: duckdb.DuckDBPyConnection, table: str, events: str) -> None:
    """Roll up every row of engine table `events` into the empty `table`."""
    engine.execute(f"INSERT INTO {table} {_ROLLUP.format(source=events, where='TRUE')}")


def refresh_days(engine: duckdb.DuckDBPyConnection, table: str, events: str, days: list[datetime]) -> None:
    """Compute the rows of the given UTC days again from `events` (the days new or removed rows touched)."""
    if not days:
        return
    engine.execute("CREATE OR REPLACE TEMPORARY TABLE touched_days (day TIMESTAMP)")
    engine.executemany("INSERT INTO touched_days VALUES (?)", [[d] for d in days])
    engine.execute(f"DELETE FROM {table} WHERE day IN (SELECT day FROM touched_days)")
    # The time bounds let DuckDB skip the row groups of other days (events arrive roughly in time order).
    where = "ts >= ? AND ts < ? + INTERVAL 1 DAY AND date_trunc('day', ts) IN (SELECT day FROM touched_days)"
    engine.execute(f"INSERT INTO {table} {_ROLLUP.format(source=events, where=where)}", [min(days), max(days)])
    engine.execute("DROP TABLE touched_days")


def days_of(engine: duckdb.DuckDBPyConnection, events: str, after_seq: int) -> list[datetime]:
    """The UTC days of the rows of `events` past `after_seq`."""
    rows = engine.execute(f"SELECT DISTINCT date_trunc('day', ts) FROM {events} WHERE seq > ?", [after_seq]).fetchall()
    return [row[0] for row in rows]


def _table(db: Database) -> str:
    """The rollup of the engine's events: the cache file's (kept current by analysis/cache.py) or one built
    in memory on first use."""
    return db.kept_table(TABLE, create_table, fill)


def _midnight(moment: datetime | None) -> bool:
    return moment is None or moment.time() == time(0)


def _condition(where: Filter) -> tuple[str, list[Any]] | None:
    """The filter as a condition over the rollup's columns, or None when it cannot be one exactly."""
    start, end = where.bounds()
    if where.properties or not (_midnight(start) and _midnight(end)):
        return None
    # At a UTC midnight, ts >= start is day >= start and ts < end is day < end.
    return where.column_sql("r", time_column="day")


def day_rows(db: Database, where: Filter | None, breakdown: Breakdown | None = None) -> tuple[str, list[Any]] | None:
    """A subquery of the rollup rows of the filtered events (user_id, day, action, source, events, first_ts,
    last_ts, first_received, last_received, no_sent_at, metadata_empty, segment), segment as in
    filters.filtered_events; None when the filter or breakdown needs the events themselves (or the
    Database was opened with rollups off)."""
    if not db.rollups or (breakdown is not None and breakdown.key is not None):
        return None
    found = _condition(where or Filter())
    if found is None:
        return None
    condition, params = found
    table = _table(db)
    if breakdown is None:
        return f"SELECT r.*, '' AS segment FROM {table} r WHERE {condition}", params
    query = f"""
        WITH picked AS (SELECT r.*, r.source AS raw FROM {table} r WHERE {condition}),
             kept AS (SELECT raw FROM picked GROUP BY raw ORDER BY SUM(events) DESC, raw LIMIT {int(breakdown.top)})
        SELECT * EXCLUDE (raw), CASE WHEN raw IN (SELECT raw FROM kept) THEN raw ELSE '{OTHER}' END AS segment
        FROM picked
    """
    return query, params


def data_end(db: Database) -> Any:
    """The close of the last UTC day holding data (a naive UTC timestamp), None without events."""
    if db.rollups:
        query = f"SELECT date_trunc('day', MAX(last_ts)) + INTERVAL 1 DAY AS e FROM {_table(db)}"
    else:
        query = "SELECT date_trunc('day', MAX(ts)) + INTERVAL 1 DAY AS e FROM events"
    return db.row(query)["e"]
