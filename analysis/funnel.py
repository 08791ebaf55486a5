"""Ordered funnels: how many users go through a sequence of actions within a conversion window, how long
each step takes, by entry-week cohort and by breakdown.

A user enters at their first step-0 event (among the filtered events). They reach step i at their first
step-i event at or after the moment they reached step i-1 and before entry + window (PostHog's default
window is 14 days; None: no limit). Only the step actions are read, so the cost follows the step events.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pandas as pd

from analysis import rollups
from analysis.db import Database
from analysis.filters import Breakdown, Filter, filtered_events
from analysis.timeutil import utc_index

DEFAULT_STEPS = ("signup", "activate", "purchase")
DEFAULT_WINDOW = timedelta(days=14)


def _per_user(
    db: Database, steps: Sequence[str], window: timedelta | None, where: Filter | None, breakdown: Breakdown | None
) -> tuple[str, list[Any]]:
    """A query of one row per entering user: user_id, segment, t0..t{n-1} (NULL when not reached)."""
    if not steps:
        raise ValueError("a funnel needs at least one step")
    events, params = filtered_events(db, where, breakdown)
    limit = (
        "" if window is None else f" AND e.ts < s0.t + INTERVAL {int(window.total_seconds() * 1_000_000)} MICROSECONDS"
    )
    names = ", ".join("?" for _ in steps)
    parts = [
        f"ev AS (SELECT user_id, action, ts, segment FROM ({events}) WHERE action IN ({names}))",
        "s0 AS (SELECT user_id, min_by(segment, ts) AS segment, MIN(ts) AS t FROM ev WHERE action = ?"
        " GROUP BY user_id)",
    ]
    params = [*params, *steps, steps[0]]
    for i in range(1, len(steps)):
        parts.append(
            f"s{i} AS (SELECT p.user_id, MIN(e.ts) AS t FROM s{i - 1} p JOIN s0 ON s0.user_id = p.user_id "
            f"JOIN ev e ON e.user_id = p.user_id AND e.action = ? AND e.ts >= p.t{limit} GROUP BY p.user_id)"
        )
        params.append(steps[i])
    joins = " ".join(f"LEFT JOIN s{i} ON s{i}.user_id = s0.user_id" for i in range(1, len(steps)))
    times = ", ".join(f"s{i}.t AS t{i}" for i in range(len(steps)))
    return f"WITH {', '.join(parts)} SELECT s0.user_id, s0.segment, {times} FROM s0 {joins}", params


def _summarise(db: Database, per_user: str, params: list[Any], steps: Sequence[str], group: str) -> pd.DataFrame:
    """group, step, users, median_seconds, p90_seconds (time from the step before) from the per-user query."""
    selects = []
    for i in range(len(steps)):
        gap = "NULL::DOUBLE" if i == 0 else f"(epoch_us(t{i}) - epoch_us(t{i - 1})) / 1e6"
        selects.append(
            f"SELECT {group} AS grp, {i} AS step, COUNT(t{i}) AS users, median({gap}) AS median_seconds, "
            f"quantile_cont({gap}, 0.9) AS p90_seconds FROM users WHERE t{i} IS NOT NULL GROUP BY grp"
        )
    query = f"WITH users AS ({per_user}) {' UNION ALL '.join(selects)} ORDER BY grp, step"
    return db.frame(query, params)


def _shape(counts: pd.DataFrame, steps: Sequence[str], groups: list[Any]) -> pd.DataFrame:
    """Complete every (group, step) with zeros and add the conversions."""
    full = pd.MultiIndex.from_product([groups, range(len(steps))], names=["grp", "step"])
    frame = counts.set_index(["grp", "step"]).reindex(full)
    frame["users"] = frame["users"].fillna(0).astype("int64")
    frame = frame.reset_index()
    frame.insert(2, "action", [steps[i] for i in frame["step"]])
    first = frame.groupby("grp")["users"].transform("first")
    previous = frame.groupby("grp")["users"].shift(1)
    frame["step_conversion"] = (frame["users"] / previous).where(previous > 0)
    frame.loc[frame["step"] == 0, "step_conversion"] = (first > 0).astype(float).where(first > 0)
    frame["overall_conversion"] = (frame["users"] / first).where(first > 0)
    columns = ["grp", "action", "users", "step_conversion", "overall_conversion", "median_seconds", "p90_seconds"]
    return frame[columns]


def funnel(
    db: Database,
    steps: Sequence[str] = DEFAULT_STEPS,
    window: timedelta | None = DEFAULT_WINDOW,
    where: Filter | None = None,
    breakdown: Breakdown | None = None,
) -> pd.DataFrame:
    """Per step: users who reached it in order within the window, conversion from the step before and from
    the first step, and the time from the step before (median and p90, in seconds) of those who made it.

    With a breakdown, one block of steps per segment (its value at the user's entry event), in a leading
    `segment` column."""
    per_user, params = _per_user(db, steps, window, where, breakdown)
    counts = _summarise(db, per_user, params, steps, "segment")
    groups = sorted(counts["grp"].unique()) if breakdown is not None else [""]
    frame = _shape(counts, steps, groups)
    if breakdown is None:
        return frame.drop(columns="grp")
    return frame.rename(columns={"grp": "segment"})


def funnel_by_cohort(
    db: Database,
    steps: Sequence[str] = DEFAULT_STEPS,
    window: timedelta | None = DEFAULT_WINDOW,
    where: Filter | None = None,
) -> pd.DataFrame:
    """Conversion by entry-week cohort (the calendar week, Monday UTC, of each user's first step-0 event):
    users at each step, the overall conversion, and `complete`: whether every member's window had ended
    by the close of the last day holding data (an incomplete cohort's conversion can still grow)."""
    per_user, params = _per_user(db, steps, window, where, None)
    counts = _summarise(db, per_user, params, steps, "date_trunc('week', t0)")
    if counts.empty:
        return pd.DataFrame(columns=[*steps, "conversion", "complete"])
    table = counts.pivot_table(index="grp", columns="step", values="users", fill_value=0, aggfunc="sum")
    table = table.reindex(columns=range(len(steps)), fill_value=0)
    table.columns = pd.Index(list(steps))
    table.index = utc_index(pd.Series(table.index))
    table.index.name = "cohort"
    table["conversion"] = table[steps[-1]] / table[steps[0]]
    data_end = pd.Timestamp(rollups.data_end(db))
    reach = pd.Timedelta(window) if window is not None else pd.Timedelta(0)
    table["complete"] = [
        bool(window is not None and c.tz_localize(None) + pd.Timedelta(days=7) + reach <= data_end) for c in table.index
    ]
    return table
