"""The sessions of every event as the report asks for them (session ids, else a 30-minute inactivity gap, no
filter), one row each with its ordered actions: what the session summary, lengths and paths read instead of
grouping and sorting every event again.

One row per session: user_id, session (the session id, or '~N' for a user's N-th inactivity session),
tagged (whether it is a session id), events, us (last event - first event, in microseconds) and actions
(the session's actions ordered by time, then seq). With a cache (analysis/cache.py) the table is kept in the
cache file: when new rows (or rows a dead run left past the mark) arrive, the sessions they can change are
computed again from the copy's events: those sharing a new row's session id, and every inactivity session
of a user with a new row without one (a late event can split or join that user's sessions). Without a
cache it is built on first use. Any other filter, gap or use_session_id=False reads the events
(analysis/sessions.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

    from analysis.db import Database

TABLE = "session_paths"
GAP = timedelta(minutes=30)  # the default inactivity gap (analysis.sessions.DEFAULT_GAP)

_CREATE = """
    CREATE TABLE {table} (user_id VARCHAR NOT NULL, session VARCHAR NOT NULL, tagged BOOLEAN NOT NULL,
                          events BIGINT NOT NULL, us BIGINT NOT NULL, actions VARCHAR[] NOT NULL)
"""

# The sessions of the events of {events} chosen by {tagged} (rows with a session id) and {untagged} (users
# whose rows without one are cut by the gap), keyed as analysis/sessions.py keys them.
_SESSIONS = """
    WITH keyed AS (
        SELECT user_id, session_id AS session, TRUE AS tagged, ts, seq, action
        FROM {events} WHERE session_id IS NOT NULL AND {tagged}
        UNION ALL
        SELECT user_id, '~' || SUM(starts) OVER (PARTITION BY user_id ORDER BY ts, seq)::VARCHAR, FALSE, ts, seq, action
        FROM (SELECT user_id, ts, seq, action,
                     CASE WHEN lag(ts) OVER w IS NULL OR epoch_us(ts) - epoch_us(lag(ts) OVER w) > {gap_us}
                          THEN 1 ELSE 0 END AS starts
              FROM {events} WHERE session_id IS NULL AND {untagged}
              WINDOW w AS (PARTITION BY user_id ORDER BY ts, seq)))
    SELECT user_id, session, tagged, COUNT(*) AS events, epoch_us(MAX(ts)) - epoch_us(MIN(ts)) AS us,
           list_transform(list_sort(list({{'ts': ts, 'seq': seq, 'action': action}})), lambda e: e.action) AS actions
    FROM keyed GROUP BY user_id, session, tagged
"""


def create_table(engine: duckdb.DuckDBPyConnection, table: str) -> None:
    engine.execute(_CREATE.format(table=table))


def _insert(engine: duckdb.DuckDBPyConnection, table: str, events: str, tagged: str, untagged: str) -> None:
    gap_us = int(GAP.total_seconds() * 1_000_000)
    query = _SESSIONS.format(events=events, tagged=tagged, untagged=untagged, gap_us=gap_us)
    engine.execute(f"INSERT INTO {table} {query}")


def fill(engine: duckdb.DuckDBPyConnection, table: str, events: str) -> None:
    """The sessions of every row of engine table `events`, into the empty `table`."""
    _insert(engine, table, events, "TRUE", "TRUE")


def touched(engine: duckdb.DuckDBPyConnection, events: str, after_seq: int) -> None:
    """Note in temporary tables the sessions the rows of `events` past `after_seq` can change (added to
    those already noted): touched_sessions (user_id, session) and touched_users (user_id)."""
    engine.execute("CREATE TEMPORARY TABLE IF NOT EXISTS touched_sessions (user_id VARCHAR, session VARCHAR)")
    engine.execute("CREATE TEMPORARY TABLE IF NOT EXISTS touched_users (user_id VARCHAR)")
    engine.execute(
        f"""INSERT INTO touched_sessions SELECT DISTINCT user_id, session_id FROM {events}
            WHERE seq > ? AND session_id IS NOT NULL""",
        [after_seq],
    )
    engine.execute(
        f"INSERT INTO touched_users SELECT DISTINCT user_id FROM {events} WHERE seq > ? AND session_id IS NULL",
        [after_seq],
    )


def refresh_touched(engine: duckdb.DuckDBPyConnection, table: str, events: str) -> None:
    """Compute the noted sessions again from `events`, and forget the notes."""
    engine.execute(
        f"""DELETE FROM {table}
            WHERE (tagged AND (user_id, session) IN (SELECT (user_id, session) FROM touched_sessions))
               OR (NOT tagged AND user_id IN (SELECT user_id FROM touched_users))"""
    )
    _insert(
        engine,
        table,
        events,
        "(user_id, session_id) IN (SELECT (user_id, session) FROM touched_sessions)",
        "user_id IN (SELECT user_id FROM touched_users)",
    )
    engine.execute("DROP TABLE touched_sessions")
    engine.execute("DROP TABLE touched_users")


def table_for(db: Database) -> str:
    """The session table of every event with the default gap: the cache file's, or one built in memory on
    first use."""
    return db.kept_table(TABLE, create_table, fill)
