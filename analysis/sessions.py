"""Sessions and paths.

A session is the events of one user sharing a `metadata.session_id`; events without one are cut into
sessions by inactivity: a new session starts after a gap longer than `gap` (30 minutes by default, as web
analytics tools count). Length is last event - first event; a one-event session lasts 0 s.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pandas as pd

from analysis.db import Database
from analysis.filters import Filter, filtered_events

DEFAULT_GAP = timedelta(minutes=30)


def session_events_table(
    db: Database, where: Filter | None = None, gap: timedelta = DEFAULT_GAP, use_session_id: bool = True
) -> str:
    """Engine table (user_id, session, ts, action, position) of the filtered events, each with its
    session key and its 1-based position in the session; built once per filter and gap."""
    name = "sessions_" + hashlib.sha256(f"{where!r}|{gap}|{use_session_id}".encode()).hexdigest()[:16]
    if not db.derived_table(name):
        return name
    events, params = filtered_events(db, where)
    gap_us = int(gap.total_seconds() * 1_000_000)
    key = "session_id" if use_session_id else "NULL::VARCHAR"
    cursor = db.engine().cursor()
    try:
        cursor.execute(
            f"""CREATE TABLE {name} AS
                WITH ev AS (SELECT seq, user_id, ts, action, {key} AS sid FROM ({events})),
                     cut AS (SELECT *, CASE WHEN sid IS NULL AND (epoch_us(ts) - epoch_us(lag(ts) OVER w) > {gap_us}
                                           OR lag(ts) OVER w IS NULL) THEN 1 ELSE 0 END AS starts
                             FROM ev WINDOW w AS (PARTITION BY user_id, sid IS NULL ORDER BY ts, seq)),
                     keyed AS (SELECT user_id, ts, seq, action,
                                      coalesce(sid, '~' || SUM(starts) OVER (PARTITION BY user_id, sid IS NULL
                                                                              ORDER BY ts, seq)::VARCHAR) AS session
                               FROM cut)
                SELECT user_id, session, ts, action,
                       row_number() OVER (PARTITION BY user_id, session ORDER BY ts, seq) AS position
                FROM keyed""",
            params,
        )
    finally:
        cursor.close()
    return name


def _per_session(table: str) -> str:
    return f"""SELECT user_id, session, COUNT(*) AS events, (epoch_us(MAX(ts)) - epoch_us(MIN(ts))) / 1e6 AS seconds
               FROM {table} GROUP BY user_id, session"""


def session_summary(
    db: Database, where: Filter | None = None, gap: timedelta = DEFAULT_GAP, use_session_id: bool = True
) -> dict[str, Any]:
    """sessions, users, sessions_per_user, mean/median/p90 length in seconds, mean/median events per session."""
    table = session_events_table(db, where, gap, use_session_id)
    row = db.row(
        f"""SELECT COUNT(*) AS sessions, COUNT(DISTINCT user_id) AS users, AVG(seconds) AS mean_seconds,
                   median(seconds) AS median_seconds, quantile_cont(seconds, 0.9) AS p90_seconds,
                   AVG(events) AS mean_events, median(events) AS median_events
            FROM ({_per_session(table)})"""
    )
    row["sessions_per_user"] = row["sessions"] / row["users"] if row.get("users") else 0.0
    return {k: (float(v) if isinstance(v, float) else v) for k, v in row.items()}


def session_lengths(
    db: Database,
    where: Filter | None = None,
    gap: timedelta = DEFAULT_GAP,
    edges: tuple[float, ...] = (0, 1, 60, 300, 900, 1800, 3600, 7200),
    use_session_id: bool = True,
) -> pd.DataFrame:
    """Sessions by length bucket [edge_i, edge_i+1) in seconds (the last bucket open-ended), with share."""
    table = session_events_table(db, where, gap, use_session_id)
    cases = " ".join(f"WHEN seconds < {edges[i + 1]} THEN {i}" for i in range(len(edges) - 1))
    frame = db.frame(
        f"""SELECT CASE {cases} ELSE {len(edges) - 1} END AS bucket, COUNT(*) AS sessions
            FROM ({_per_session(table)}) GROUP BY bucket ORDER BY bucket"""
    )
    labels = [f"{edges[i]:g}-{edges[i + 1]:g} s" for i in range(len(edges) - 1)] + [f">= {edges[-1]:g} s"]
    counts = frame.set_index("bucket")["sessions"].reindex(range(len(edges)), fill_value=0)
    result = pd.DataFrame(
        {"min_seconds": list(edges), "sessions": counts.to_numpy()}, index=pd.Index(labels, name="length")
    )
    total = result["sessions"].sum()
    result["share"] = result["sessions"] / total if total else 0.0
    return result


def events_per_session(
    db: Database, where: Filter | None = None, gap: timedelta = DEFAULT_GAP, use_session_id: bool = True
) -> pd.Series:
    """Number of sessions holding 1, 2, 3... events."""
    table = session_events_table(db, where, gap, use_session_id)
    frame = db.frame(
        f"SELECT events, COUNT(*) AS sessions FROM ({_per_session(table)}) GROUP BY events ORDER BY events"
    )
    return pd.Series(frame["sessions"].to_numpy(), index=pd.Index(frame["events"], name="events"), name="sessions")


def top_paths(
    db: Database,
    start_action: str,
    steps: int = 3,
    top: int = 10,
    where: Filter | None = None,
    gap: timedelta = DEFAULT_GAP,
    use_session_id: bool = True,
) -> pd.DataFrame:
    """The most frequent sequences of the `steps` actions that follow the first `start_action` of a
    session (in the same session; '(end)' where the session ends sooner): path, sessions, share of the
    sessions holding start_action."""
    if steps < 1:
        raise ValueError("steps must be at least 1")
    table = session_events_table(db, where, gap, use_session_id)
    nexts = ", ".join(
        f"coalesce(max(CASE WHEN e.position = s.position + {i} THEN e.action END), '(end)')"
        for i in range(1, steps + 1)
    )
    frame = db.frame(
        f"""WITH s AS (SELECT user_id, session, MIN(position) AS position FROM {table} WHERE action = ?
                       GROUP BY ALL),
                 paths AS (SELECT array_to_string([{nexts}], ' → ') AS path
                           FROM s JOIN {table} e ON e.user_id = s.user_id AND e.session = s.session
                                AND e.position BETWEEN s.position + 1 AND s.position + {steps}
                           GROUP BY s.user_id, s.session),
                 counted AS (SELECT path, COUNT(*) AS sessions FROM paths GROUP BY path),
                 starting AS (SELECT COUNT(*) AS n FROM s)
            SELECT path, sessions, sessions / (SELECT n FROM starting) AS share FROM counted
            UNION ALL
            SELECT ?, n - (SELECT COUNT(*) FROM paths), (n - (SELECT COUNT(*) FROM paths)) / n FROM starting
            ORDER BY sessions DESC, path LIMIT ?""",
        [start_action, " → ".join(["(end)"] * steps), top + 1],
    )
    return frame[frame["sessions"] > 0].head(top).reset_index(drop=True)
