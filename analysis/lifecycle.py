"""Lifecycle and stickiness per calendar week (Monday, UTC).

Lifecycle, as PostHog draws it: each week's active users are new (their first active week), returning
(active the week before too) or resurrecting (inactive the week before, active some earlier week); dormant
users were active the week before and not this week. Stickiness: how many of a week's users were active
on 1, 2, ... 7 distinct days of it. A week that ends after the close of the last day holding data is
flagged incomplete: its counts can only grow.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from analysis import rollups
from analysis.db import Database
from analysis.filters import Filter, filtered_events
from analysis.timeutil import utc_index


def _data_end(db: Database) -> pd.Timestamp | None:
    end = rollups.data_end(db)
    return None if end is None else pd.Timestamp(end, tz="UTC")


def _weeks_active(db: Database, where: Filter | None) -> tuple[str, list[Any]]:
    """A query of one row per user and week they were active in, with the distinct days they were: user_id,
    week, days."""
    found = rollups.day_rows(db, where)
    if found is not None:
        rows, params = found
        return (
            f"""SELECT user_id, date_trunc('week', day) AS week, COUNT(DISTINCT day) AS days FROM ({rows})
                   GROUP BY ALL""",
            params,
        )
    events, params = filtered_events(db, where)
    return (
        f"""SELECT user_id, date_trunc('week', ts) AS week, COUNT(DISTINCT date_trunc('day', ts)) AS days
               FROM ({events}) GROUP BY ALL""",
        params,
    )


def lifecycle(db: Database, where: Filter | None = None) -> pd.DataFrame:
    """Per week: new, returning, resurrecting, dormant users, and complete."""
    weeks, params = _weeks_active(db, where)
    frame = db.frame(
        f"""WITH uw AS ({weeks}),
                 marked AS (SELECT user_id, week, lag(week) OVER w AS before, lead(week) OVER w AS after,
                                   MIN(week) OVER (PARTITION BY user_id) AS first
                            FROM uw WINDOW w AS (PARTITION BY user_id ORDER BY week)),
                 last AS (SELECT MAX(week) AS week FROM uw)
            SELECT week, COUNT(*) FILTER (WHERE week = first) AS new,
                   COUNT(*) FILTER (WHERE before = week - INTERVAL 7 DAY) AS returning,
                   COUNT(*) FILTER (WHERE before < week - INTERVAL 7 DAY) AS resurrecting, 0 AS dormant
            FROM marked GROUP BY week
            UNION ALL
            SELECT week + INTERVAL 7 DAY, 0, 0, 0, COUNT(*) FROM marked
            WHERE (after IS NULL OR after > week + INTERVAL 7 DAY) AND week < (SELECT week FROM last)
            GROUP BY week""",
        params,
    )
    if frame.empty:
        return pd.DataFrame(columns=["new", "returning", "resurrecting", "dormant", "complete"])
    frame["week"] = utc_index(frame["week"])
    table = frame.groupby("week")[["new", "returning", "resurrecting", "dormant"]].sum().astype("int64")
    end = _data_end(db)
    table["complete"] = [bool(end is not None and w + pd.Timedelta(days=7) <= end) for w in table.index]
    return table


def stickiness(db: Database, where: Filter | None = None) -> pd.DataFrame:
    """Week x active days (1..7): users active on exactly that many distinct days of the week; and
    complete."""
    weeks, params = _weeks_active(db, where)
    frame = db.frame(f"SELECT week, days, COUNT(*) AS users FROM ({weeks}) GROUP BY ALL ORDER BY week, days", params)
    if frame.empty:
        return pd.DataFrame(columns=[*range(1, 8), "complete"])
    frame["week"] = utc_index(frame["week"])
    table = frame.pivot_table(index="week", columns="days", values="users", fill_value=0, aggfunc="sum")
    table = table.reindex(columns=range(1, 8), fill_value=0).astype("int64")
    table.columns.name = "active_days"
    end = _data_end(db)
    table["complete"] = [bool(end is not None and w + pd.Timedelta(days=7) <= end) for w in table.index]
    return table
