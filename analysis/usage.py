"""Usage patterns: which actions, from which sources, how many active users, how activity spreads over users."""

from __future__ import annotations

from typing import Any

import pandas as pd

from analysis import rollups
from analysis.db import Database
from analysis.filters import Filter, filter_sql
from analysis.timeutil import utc_index


def _counted(db: Database, where: Filter | None) -> tuple[str, str, str, list[Any]]:
    """Where the filtered events are counted: (FROM clause, events expression, UTC day expression, params).
    The per user-day rollup when the filter allows (analysis/rollups.py), else the events themselves."""
    days = rollups.day_rows(db, where)
    if days is not None:
        rows, params = days
        return f"({rows}) r", "SUM(events)::BIGINT", "day", params
    condition, params = filter_sql(db, where)
    return f"events e WHERE {condition}", "COUNT(*)", "date_trunc('day', ts)", params


def action_counts(db: Database, where: Filter | None = None) -> pd.DataFrame:
    """Per action: events, distinct users and share of all events, most frequent first."""
    source, events, _, params = _counted(db, where)
    query = f"""SELECT action, {events} AS events, COUNT(DISTINCT user_id) AS users FROM {source}
                GROUP BY action ORDER BY events DESC, action"""
    frame = db.frame(query, params).set_index("action")
    frame["share"] = frame["events"] / frame["events"].sum()
    return frame


def top_action(db: Database, where: Filter | None = None) -> str:
    return str(action_counts(db, where).index[0])


def actions_by_source(db: Database, normalize: bool = False, where: Filter | None = None) -> pd.DataFrame:
    """Action x source event counts; with normalize, each source's column sums to 1 (its action mix)."""
    source, events, _, params = _counted(db, where)
    frame = db.frame(f"SELECT action, source, {events} AS events FROM {source} GROUP BY action, source", params)
    table = frame.pivot_table(index="action", columns="source", values="events", fill_value=0, aggfunc="sum")
    table = table.sort_index().sort_index(axis=1)
    if normalize:
        table = table / table.sum(axis=0)
    return table


def _users_per(db: Database, unit: str, where: Filter | None) -> tuple[str, list[Any]]:
    """The query of distinct users per `unit` (day or week), column `unit` and users."""
    source, _, day, params = _counted(db, where)
    return (
        f"""SELECT date_trunc('{unit}', {day}) AS {unit}, COUNT(DISTINCT user_id) AS users FROM {source}
               GROUP BY {unit} ORDER BY {unit}""",
        params,
    )


def daily_active_users(db: Database, where: Filter | None = None) -> pd.Series:
    """Distinct users per UTC day."""
    frame = db.frame(*_users_per(db, "day", where))
    return pd.Series(frame["users"].to_numpy(), index=utc_index(frame["day"]), name="daily_active_users")


def weekly_active_users(db: Database, where: Filter | None = None) -> pd.Series:
    """Distinct users per calendar week (weeks start on Monday, UTC)."""
    frame = db.frame(*_users_per(db, "week", where))
    return pd.Series(frame["users"].to_numpy(), index=utc_index(frame["week"]), name="weekly_active_users")


def events_per_user(db: Database, where: Filter | None = None) -> pd.Series:
    """Events per user, one entry per user, most active first (ties by user id)."""
    source, events, _, params = _counted(db, where)
    frame = db.frame(
        f"SELECT user_id, {events} AS events FROM {source} GROUP BY user_id ORDER BY events DESC, user_id", params
    )
    return pd.Series(frame["events"].to_numpy(), index=pd.Index(frame["user_id"], name="user_id"), name="events")


def power_users(db: Database, top: int = 10, where: Filter | None = None) -> pd.DataFrame:
    """The most active users with their event count and share of all events."""
    counts = events_per_user(db, where)
    frame = counts.head(top).to_frame()
    frame["share"] = frame["events"] / counts.sum()
    return frame


def top_users_share(counts: pd.Series, fraction: float = 0.01) -> float:
    """Share of all events produced by the most active `fraction` of users (at least one user)."""
    ordered = counts.sort_values(ascending=False)
    head = max(1, round(len(ordered) * fraction))
    return float(ordered.head(head).sum() / ordered.sum()) if len(ordered) else 0.0
