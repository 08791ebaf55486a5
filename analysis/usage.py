"""Usage patterns: which actions, from which sources, how many active users, how activity spreads over users."""

from __future__ import annotations

import pandas as pd

from analysis.db import Database
from analysis.timeutil import day_index


def action_counts(db: Database) -> pd.DataFrame:
    """Per action: events, distinct users and share of all events, most frequent first."""
    frame = db.frame(db.sql.action_counts).set_index("action")
    frame["share"] = frame["events"] / frame["events"].sum()
    return frame


def top_action(db: Database) -> str:
    return str(action_counts(db).index[0])


def actions_by_source(db: Database, normalize: bool = False) -> pd.DataFrame:
    """Action x source event counts; with normalize, each source's column sums to 1 (its action mix)."""
    frame = db.frame(db.sql.actions_by_source)
    table = frame.pivot_table(index="action", columns="source", values="events", fill_value=0, aggfunc="sum")
    if normalize:
        table = table / table.sum(axis=0)
    return table


def daily_active_users(db: Database) -> pd.Series:
    frame = db.frame(db.sql.daily_active_users)
    return pd.Series(frame["users"].to_numpy(), index=day_index(frame["day"]), name="daily_active_users")


def weekly_active_users(db: Database) -> pd.Series:
    """Distinct users per calendar week (weeks start on Monday, UTC)."""
    frame = db.frame(db.sql.weekly_active_users)
    return pd.Series(frame["users"].to_numpy(), index=day_index(frame["week"]), name="weekly_active_users")


def events_per_user(db: Database) -> pd.Series:
    """Events per user, one entry per user (memory grows with users, not with events)."""
    frame = db.frame(db.sql.events_per_user)
    return pd.Series(frame["events"].to_numpy(), index=frame["user_id"], name="events").sort_values(ascending=False)


def power_users(db: Database, top: int = 10) -> pd.DataFrame:
    """The most active users with their event count and share of all events."""
    counts = events_per_user(db)
    frame = counts.head(top).to_frame()
    frame["share"] = frame["events"] / counts.sum()
    return frame


def top_users_share(counts: pd.Series, fraction: float = 0.01) -> float:
    """Share of all events produced by the most active `fraction` of users (at least one user)."""
    ordered = counts.sort_values(ascending=False)
    head = max(1, round(len(ordered) * fraction))
    return float(ordered.head(head).sum() / ordered.sum()) if len(ordered) else 0.0
