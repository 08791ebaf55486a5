"""Retention: users grouped by the calendar week (Monday, UTC) of their start event, and the share of each
cohort that does the return event k periods later.

Periods are calendar weeks (`period="week"`: week k is the cohort's week + k) or rolling 7-day periods
from each user's own start (`period="rolling"`: period k is [start + 7k days, start + 7(k + 1) days)).
Period 0 is the start itself: every member counts. A period not yet begun for a cohort is NaN; one that
has begun but not ended by the close of the last day holding data is incomplete: listed in
`attrs["incomplete"]` and column `complete` of retention_table, and left out of retention_curve, so that
it is never read as a drop.
"""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd

from analysis import rollups
from analysis.db import Database
from analysis.filters import Breakdown, Filter, filtered_events
from analysis.timeutil import utc_index

Period = Literal["week", "rolling"]
_WEEK_US = 7 * 86_400_000_000


def retention_table(
    db: Database,
    start_action: str | None = None,
    return_action: str | None = None,
    period: Period = "week",
    where: Filter | None = None,
    breakdown: Breakdown | None = None,
) -> pd.DataFrame:
    """Long form: [segment,] cohort, offset, users (returning in that period), cohort_users, share, complete.
    start_action / return_action None: any event."""
    if period not in ("week", "rolling"):
        raise ValueError("period must be 'week' or 'rolling'")
    if period == "week":
        offset = f"(epoch_us(date_trunc('week', {{t}})) - epoch_us(s.cohort)) // {_WEEK_US}"
        started = "s.cohort + INTERVAL (7 * o.k) DAY"
        ended = "s.cohort + INTERVAL (7 * (o.k + 1)) DAY"
    else:
        offset = f"(epoch_us({{t}}) - epoch_us(s.t)) // {_WEEK_US}"
        started = "s.t + INTERVAL (7 * o.k) DAY"
        ended = "s.t + INTERVAL (7 * (o.k + 1)) DAY"
    start_if = "TRUE" if start_action is None else "action = ?"
    return_if = "TRUE" if return_action is None else "r.action = ?"
    found = rollups.day_rows(db, where, breakdown)
    if found is not None:
        # Rollup rows: a user's events of one action on one day, from first_ts to last_ts. A day holds at
        # most one period boundary, so its events' offsets are those of its first and last event (the
        # first counted from the user's start: an event before it is no return).
        events, params = found
        first, last = "first_ts", "last_ts"
        returns = f"""SELECT DISTINCT user_id, {offset.format(t="rt")} AS k
                      FROM (SELECT s.user_id, s.t, s.cohort, unnest([GREATEST(r.first_ts, s.t), r.last_ts]) AS rt
                            FROM s JOIN ev r ON r.user_id = s.user_id AND r.last_ts >= s.t WHERE {return_if}) s"""
    else:
        events, params = filtered_events(db, where, breakdown)
        first = last = "ts"
        returns = f"""SELECT DISTINCT s.user_id, {offset.format(t="r.ts")} AS k
                      FROM s JOIN ev r ON r.user_id = s.user_id AND r.ts >= s.t WHERE {return_if}"""
    query = f"""
        WITH ev AS ({events}),
             data_end AS (SELECT date_trunc('day', MAX({last})) + INTERVAL 1 DAY AS e FROM ev),
             s AS (SELECT user_id, MIN({first}) AS t, date_trunc('week', MIN({first})) AS cohort,
                          min_by(segment, {first}) AS segment
                   FROM ev WHERE {start_if} GROUP BY user_id),
             returns AS ({returns}),
             offsets AS (SELECT DISTINCT k FROM returns UNION SELECT 0),
             cells AS (SELECT s.segment, s.cohort, o.k,
                              COUNT(*) FILTER (WHERE {started} < (SELECT e FROM data_end)) AS observable,
                              bool_and({ended} <= (SELECT e FROM data_end)) AS complete, COUNT(*) AS cohort_users
                       FROM s CROSS JOIN offsets o GROUP BY ALL),
             counted AS (SELECT s.segment, s.cohort, r.k, COUNT(*) AS users
                         FROM returns r JOIN s ON s.user_id = r.user_id WHERE r.k > 0 GROUP BY ALL)
        SELECT c.segment, c.cohort, c.k AS "offset",
               CASE WHEN c.k = 0 THEN c.cohort_users ELSE coalesce(kk.users, 0) END AS users, c.cohort_users, c.complete
        FROM cells c LEFT JOIN counted kk ON kk.segment = c.segment AND kk.cohort = c.cohort AND kk.k = c.k
        WHERE c.observable > 0
        ORDER BY c.segment, c.cohort, c.k
    """
    query_params: list[Any] = [
        *params,
        *([start_action] if start_action else []),
        *([return_action] if return_action else []),
    ]
    frame = db.frame(query, query_params)
    frame["cohort"] = utc_index(frame["cohort"]) if len(frame) else pd.Series(dtype="datetime64[us, UTC]")
    frame["offset"] = frame["offset"].astype("int64")
    frame["share"] = frame["users"] / frame["cohort_users"]
    if breakdown is None:
        frame = frame.drop(columns="segment")
    return frame.reset_index(drop=True)


def cohort_counts(
    db: Database,
    start_action: str | None = None,
    return_action: str | None = None,
    period: Period = "week",
    where: Filter | None = None,
) -> pd.DataFrame:
    """Cohort (week start) x periods since the start: returning users (period 0: the cohort's size).
    Periods not yet begun are NaN; begun but unfinished ones are listed in attrs["incomplete"] as
    (cohort, offset) pairs."""
    long = retention_table(db, start_action, return_action, period, where)
    if long.empty:
        return pd.DataFrame()
    table = long.pivot_table(index="cohort", columns="offset", values="users", aggfunc="sum")
    table.columns.name = "week_offset"
    incomplete = long.loc[~long["complete"], ["cohort", "offset"]]
    table.attrs["incomplete"] = [
        (c.isoformat(), int(o)) for c, o in zip(incomplete["cohort"], incomplete["offset"], strict=True)
    ]
    return table


def retention_matrix(
    db: Database,
    start_action: str | None = None,
    return_action: str | None = None,
    period: Period = "week",
    where: Filter | None = None,
) -> pd.DataFrame:
    """Share of each cohort returning k periods after its start (column 0 is 1.0), plus the cohort size."""
    counts = cohort_counts(db, start_action, return_action, period, where)
    if counts.empty:
        return counts
    matrix = counts.div(counts[0], axis=0)
    matrix.insert(0, "users", counts[0].astype(int))
    matrix.attrs.update(counts.attrs)
    return matrix


def retention_curve(
    db: Database,
    start_action: str | None = None,
    return_action: str | None = None,
    period: Period = "week",
    where: Filter | None = None,
) -> pd.Series:
    """Retention k periods after the start over the cohorts whose period k is complete (users weighted:
    sum of returning users / sum of cohort sizes)."""
    long = retention_table(db, start_action, return_action, period, where)
    done = long[long["complete"]]
    if done.empty:
        return pd.Series(dtype=float, name="retention").rename_axis("week_offset")
    sums = done.groupby("offset")[["users", "cohort_users"]].sum()
    curve = (sums["users"] / sums["cohort_users"]).astype(float)
    curve.index = curve.index.astype(int)
    return curve.rename("retention").rename_axis("week_offset")
