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

from analysis import session_paths
from analysis.db import Database
from analysis.filters import Filter, filtered_events

DEFAULT_GAP = timedelta(minutes=30)


def _keyed_events(db: Database, where: Filter | None, gap: timedelta, use_session_id: bool) -> tuple[str, list[Any]]:
    """A query of the filtered events with their session key: seq, user_id, ts, action, session.

    Events carrying a session_id need no ordering at all (their key is the id); only the others are
    sorted per user to find the gaps, so the common case costs a scan, not a sort."""
    events, params = filtered_events(db, where)
    gap_us = int(gap.total_seconds() * 1_000_000)
    untagged = "session_id IS NULL" if use_session_id else "TRUE"
    tagged = (
        "SELECT seq, user_id, ts, action, session_id AS session FROM ev WHERE session_id IS NOT NULL UNION ALL "
        if use_session_id
        else ""
    )
    query = f"""
        WITH ev AS ({events}),
             cut AS (SELECT seq, user_id, ts, action,
                            CASE WHEN lag(ts) OVER w IS NULL OR epoch_us(ts) - epoch_us(lag(ts) OVER w) > {gap_us}
                                 THEN 1 ELSE 0 END AS starts
                     FROM ev WHERE {untagged} WINDOW w AS (PARTITION BY user_id ORDER BY ts, seq))
        {tagged}
        SELECT seq, user_id, ts, action,
               '~' || SUM(starts) OVER (PARTITION BY user_id ORDER BY ts, seq)::VARCHAR AS session FROM cut
    """
    return query, params


def _every_session(db: Database, where: Filter | None, gap: timedelta, use_session_id: bool) -> bool:
    """Whether the sessions asked for are those analysis/session_paths.py keeps."""
    return db.rollups and (where is None or where == Filter()) and gap == session_paths.GAP and use_session_id


def session_table(
    db: Database, where: Filter | None = None, gap: timedelta = DEFAULT_GAP, use_session_id: bool = True
) -> str:
    """Engine table of one row per session (user_id, session, events, us: length in microseconds), built
    once per filter and gap (kept with the events for the report's own: analysis/session_paths.py)."""
    if _every_session(db, where, gap, use_session_id):
        return session_paths.table_for(db)
    name = "sessions_" + hashlib.sha256(f"{where!r}|{gap}|{use_session_id}".encode()).hexdigest()[:16]
    if not db.derived_table(name):
        return name
    keyed, params = _keyed_events(db, where, gap, use_session_id)
    cursor = db.engine().cursor()
    try:
        # Lengths stay integer microseconds until the end: sums of integers do not depend on the order the
        # engine's threads add them in, so every backend gives the very same averages.
        cursor.execute(
            f"""CREATE TABLE {name} AS
                SELECT user_id, session, COUNT(*) AS events, epoch_us(MAX(ts)) - epoch_us(MIN(ts)) AS us
                FROM ({keyed}) GROUP BY user_id, session""",
            params,
        )
    finally:
        cursor.close()
    return name


def session_summary(
    db: Database, where: Filter | None = None, gap: timedelta = DEFAULT_GAP, use_session_id: bool = True
) -> dict[str, Any]:
    """sessions, users, sessions_per_user, mean/median/p90 length in seconds, mean/median events per session."""
    table = session_table(db, where, gap, use_session_id)
    row = db.row(
        f"""SELECT COUNT(*) AS sessions, COUNT(DISTINCT user_id) AS users, AVG(us) / 1e6 AS mean_seconds,
                   median(us) / 1e6 AS median_seconds, quantile_cont(us, 0.9) / 1e6 AS p90_seconds,
                   AVG(events) AS mean_events, median(events) AS median_events
            FROM {table}"""
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
    table = session_table(db, where, gap, use_session_id)
    cases = " ".join(f"WHEN us < {round(edges[i + 1] * 1e6)} THEN {i}" for i in range(len(edges) - 1))
    frame = db.frame(
        f"""SELECT CASE {cases} ELSE {len(edges) - 1} END AS bucket, COUNT(*) AS sessions
            FROM {table} GROUP BY bucket ORDER BY bucket"""
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
    table = session_table(db, where, gap, use_session_id)
    frame = db.frame(f"SELECT events, COUNT(*) AS sessions FROM {table} GROUP BY events ORDER BY events")
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
    if _every_session(db, where, gap, use_session_id):
        held = f"SELECT actions FROM {session_paths.table_for(db)} WHERE list_contains(actions, ?)"
        params: list[Any] = [start_action]
    else:
        # One list per session holding start_action, sorted there (sorting every event by session in a
        # window or a join costs twice as much); the keyed events are cheap to compute again, dearer to keep.
        keyed, params = _keyed_events(db, where, gap, use_session_id)
        held = f"""WITH k AS NOT MATERIALIZED ({keyed})
                   SELECT list_transform(list_sort(list({{'ts': ts, 'seq': seq, 'action': action}})),
                                         lambda e: e.action) AS actions
                   FROM k WHERE (user_id, session) IN (SELECT (user_id, session) FROM k WHERE action = ?)
                   GROUP BY user_id, session"""
        params = [*params, start_action]
    frame = db.frame(
        f"""WITH s AS ({held}),
                 paths AS (SELECT array_to_string(list_transform(range(1, {steps} + 1),
                               lambda i: coalesce(actions[list_position(actions, ?) + i], '(end)')), ' → ') AS path
                           FROM s)
            SELECT path, COUNT(*) AS sessions, COUNT(*) / any_value((SELECT COUNT(*) FROM s)) AS share
            FROM paths GROUP BY path ORDER BY sessions DESC, path LIMIT ?""",
        [*params, start_action, top],
    )
    return frame[frame["sessions"] > 0].head(top).reset_index(drop=True)
