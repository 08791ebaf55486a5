"""Trends: events, unique users and a numeric property's sum per action per day or week, each beside the
period before it; rolling active users (DAU, 7-day WAU, 30-day MAU) and DAU/MAU stickiness.

A period is complete when it ends by the close of the last day holding data; the last, partial one is
flagged (`complete`), never to be read as a fall.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd

from analysis import rollups
from analysis.db import Database
from analysis.filters import Breakdown, Filter, filtered_events, property_table
from analysis.timeutil import utc_index

Interval = Literal["day", "week"]


def _interval(interval: str) -> str:
    if interval not in ("day", "week"):
        raise ValueError("interval must be 'day' or 'week'")
    return interval


def _with_previous(frame: pd.DataFrame, keys: list[str], values: list[str], interval: str) -> pd.DataFrame:
    """Add previous_<value> columns: the value of the same keys one period earlier (0 when absent)."""
    step = pd.Timedelta(days=1 if interval == "day" else 7)
    earlier = frame[[*keys, "period", *values]].copy()
    earlier["period"] = earlier["period"] + step
    earlier = earlier.rename(columns={v: f"previous_{v}" for v in values})
    merged = frame.merge(earlier, on=[*keys, "period"], how="left")
    first = frame["period"].min()
    for value in values:
        column = f"previous_{value}"
        merged[column] = merged[column].where(merged["period"] == first, merged[column].fillna(0))
    return merged


def _complete(db: Database, periods: pd.Series, interval: str) -> pd.Series:
    end = rollups.data_end(db)
    if end is None:
        return pd.Series(dtype=bool)
    step = pd.Timedelta(days=1 if interval == "day" else 7)
    return (periods + step) <= pd.Timestamp(end, tz="UTC")


def trends(
    db: Database,
    interval: Interval = "day",
    where: Filter | None = None,
    breakdown: Breakdown | None = None,
) -> pd.DataFrame:
    """Per period (day or Monday-week, UTC), action [and segment]: events, users, and the same for the
    period before (previous_events, previous_users; NaN for the first period), plus `complete`."""
    unit = _interval(interval)
    days = rollups.day_rows(db, where, breakdown)
    if days is not None:
        rows, params = days
        query = f"""SELECT date_trunc('{unit}', day) AS period, action, segment, SUM(events)::BIGINT AS events,
                           COUNT(DISTINCT user_id) AS users
                    FROM ({rows}) GROUP BY ALL ORDER BY period, action, segment"""
    else:
        events, params = filtered_events(db, where, breakdown)
        query = f"""SELECT date_trunc('{unit}', ts) AS period, action, segment, COUNT(*) AS events,
                           COUNT(DISTINCT user_id) AS users
                    FROM ({events}) GROUP BY ALL ORDER BY period, action, segment"""
    frame = db.frame(query, params)
    frame["period"] = utc_index(frame["period"]) if len(frame) else pd.Series(dtype="datetime64[us, UTC]")
    frame = _with_previous(frame, ["action", "segment"], ["events", "users"], unit)
    frame["complete"] = _complete(db, frame["period"], unit).to_numpy() if len(frame) else []
    if breakdown is None:
        frame = frame.drop(columns="segment")
    return frame


def property_sum(
    db: Database,
    key: str,
    interval: Interval = "day",
    where: Filter | None = None,
    unit_key: str | None = None,
) -> pd.DataFrame:
    """Sum of a numeric metadata property per period, action and unit, beside the period before: columns
    period, action, unit, total, events (holding a number), previous_total, complete. The unit is the
    event's `unit_key` value (default: its currency or unit key when it has one, else ''), so EUR and USD
    amounts are summed apart."""
    unit = _interval(interval)
    events, params = filtered_events(db, where)
    values = property_table(db, key)
    join, unit_expr = "", "coalesce(v.unit, '')"
    if unit_key:
        join, unit_expr = f"LEFT JOIN {property_table(db, unit_key)} u ON u.seq = e.seq", "coalesce(u.value, '')"
    frame = db.frame(
        f"""SELECT date_trunc('{unit}', e.ts) AS period, e.action, {unit_expr} AS unit,
                   SUM(v.value::DECIMAL(38, 9))::DOUBLE AS total, COUNT(*) AS events
            FROM ({events}) e JOIN {values} v ON v.seq = e.seq AND v.type IN ('UBIGINT', 'BIGINT', 'DOUBLE')
            {join}
            GROUP BY ALL ORDER BY period, action, unit""",
        params,
    )
    frame["period"] = utc_index(frame["period"]) if len(frame) else pd.Series(dtype="datetime64[us, UTC]")
    frame = _with_previous(frame, ["action", "unit"], ["total"], unit)
    frame["complete"] = _complete(db, frame["period"], unit).to_numpy() if len(frame) else []
    return frame


def active_users(db: Database, where: Filter | None = None) -> pd.DataFrame:
    """Per UTC day: dau, wau (distinct users over the 7 days ending that day), mau (30 days), stickiness
    (dau / mau), and wau_complete / mau_complete: whether the window lies wholly inside the data (the first
    6 / 29 days see only part of theirs).

    Exact and linear in user-days: each active day of a user covers the days until their next active day
    or the window's end, whichever is first; a running sum of those covers counts the distinct users."""
    found = rollups.day_rows(db, where)
    if found is not None:
        rows, params = found
        active = f"SELECT DISTINCT user_id, day AS d FROM ({rows})"
    else:
        events, params = filtered_events(db, where)
        active = f"SELECT DISTINCT user_id, date_trunc('day', ts) AS d FROM ({events})"
    frame = db.frame(
        f"""WITH ud AS ({active}),
                 nx AS (SELECT d, lead(d) OVER (PARTITION BY user_id ORDER BY d) AS nd FROM ud)
            SELECT d AS day, 'dau' AS kind, COUNT(*) AS delta FROM nx GROUP BY ALL
            UNION ALL SELECT LEAST(coalesce(nd, d + INTERVAL 7 DAY), d + INTERVAL 7 DAY), 'wau', -COUNT(*)
                      FROM nx GROUP BY ALL
            UNION ALL SELECT LEAST(coalesce(nd, d + INTERVAL 30 DAY), d + INTERVAL 30 DAY), 'mau', -COUNT(*)
                      FROM nx GROUP BY ALL""",
        params,
    )
    if frame.empty:
        return pd.DataFrame(columns=["dau", "wau", "mau", "stickiness", "wau_complete", "mau_complete"])
    frame["day"] = utc_index(frame["day"])
    starts = frame[frame["kind"] == "dau"].set_index("day")["delta"]
    days = pd.date_range(starts.index.min(), starts.index.max(), freq="D")
    dau = starts.reindex(days, fill_value=0)
    result = pd.DataFrame({"dau": dau.astype("int64")}, index=days)
    for kind in ("wau", "mau"):
        ends = frame[frame["kind"] == kind].groupby("day")["delta"].sum()
        change = dau.add(ends.reindex(days, fill_value=0), fill_value=0)
        result[kind] = change.cumsum().astype("int64")
    result["stickiness"] = (result["dau"] / result["mau"]).where(result["mau"] > 0)
    offset = (days - days[0]).days
    result["wau_complete"] = offset >= 6
    result["mau_complete"] = offset >= 29
    result.index.name = "day"
    return result
