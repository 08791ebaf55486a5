"""Usage patterns: which actions, from which sources, how many active users, how activity spreads over users."""

from __future__ import annotations

import pandas as pd

from analysis.db import Database
from analysis.filters import Filter, filter_sql
from analysis.timeutil import utc_index


def action_counts(db: Database, where: Filter | None = None) -> pd.DataFrame:
    """Per action: events, distinct users and share of all events, most frequent first."""
    condition, params = filter_sql(db, where)
    frame = db.frame(
        f"""SELECT action, COUNT(*) AS events, COUNT(DISTINCT user_id) AS users FROM events e WHERE {condition}
            GROUP BY action ORDER BY events DESC, action""",
        params,
    ).set_index("action")
    frame["share"] = frame["events"] / frame["events"].sum()
    return frame


def top_action(db: Database, where: Filter | None = None) -> str:
    return str(action_counts(db, where).index[0])


def actions_by_source(db: Database, normalize: bool = False, where: Filter | None = None) -> pd.DataFrame:
    """Action x source event counts; with normalize, each source's column sums to 1 (its action mix)."""
    condition, params = filter_sql(db, where)
    frame = db.frame(
        f"SELECT action, source, COUNT(*) AS events FROM events e WHERE {condition} GROUP BY action, source",
        params,
    )
    table = frame.pivot_table(index="action", columns="source", values="events", fill_value=0, aggfunc="sum")
    table = table.sort_index().sort_index(axis=1)
    if normalize:
        table = table / table.sum(axis=0)
    return table


def daily_active_users(db: Database, where: Filter | None = None) -> pd.Series:
    """Distinct users per UTC day."""
    condition, params = filter_sql(db, where)
    frame = db.frame(
        f"""SELECT date_trunc('day', ts) AS day, COUNT(DISTINCT user_id) AS users FROM events e WHERE {condition}
            GROUP BY day ORDER BY day""",
        params,
    )
    return pd.Series(frame["users"].to_numpy(), index=utc_index(frame["day"]), name="daily_active_users")


def weekly_active_users(db: Database, where: Filter | None = None) -> pd.Series:
    """Distinct users per calendar week (weeks start on Monday, UTC)."""
    condition, params = filter_sql(db, where)
    frame = db.frame(
        f"""SELECT date_trunc('week', ts) AS week, COUNT(DISTINCT user_id) AS users FROM events e
            WHERE {condition} GROUP BY week ORDER BY week""",
        params,
    )
    return pd.Series(frame["users"].to_numpy(), index=utc_index(frame["week"]), name="weekly_active_users")


def events_per_user(db: Database, where: Filter | None = None) -> pd.Series:
    """Events per user, one entry per user, most active first (ties by user id)."""
    condition, params = filter_sql(db, where)
    frame = db.frame(
        f"""SELECT user_id, COUNT(*) AS events FROM events e WHERE {condition}
            GROUP BY user_id ORDER BY events DESC, user_id""",
        params,
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
