"""Data quality: how much there is, over what span, and what looks wrong (duplicates, late events, gaps)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from analysis.db import Database
from analysis.timeutil import parse_utc

DELAY_BUCKETS = ("negative (client clock ahead)", "< 1 s", "1 s - 1 min", "1 min - 1 h", "1 h - 1 day", ">= 1 day")


def overview(db: Database) -> dict[str, Any]:
    """Counts and time span: events, users, actions, sources, first/last event, span in days."""
    row = db.row(db.sql.overview)
    for key in ("first_timestamp", "last_timestamp", "first_received_at", "last_received_at"):
        row[key] = parse_utc(row[key]) if row.get(key) else None
    first, last = row["first_timestamp"], row["last_timestamp"]
    row["span_days"] = (last - first).total_seconds() / 86400 if first and last else 0.0
    return row


def duplicate_event_ids(db: Database) -> dict[str, int]:
    """event_ids stored more than once (the store forbids it, so anything but 0 is a broken store)."""
    row = db.row(db.sql.duplicate_event_ids)
    return {"ids": int(row["ids"]), "extra_rows": int(row["extra_rows"])}


def probable_retries(db: Database) -> dict[str, int]:
    """Same user, action, source, timestamp and metadata under different event_ids: a client that retried
    with a fresh id. Counted, not removed: the store keeps every fact it was given."""
    row = db.row(db.sql.probable_retries)
    return {"groups": int(row["groups"]), "extra_copies": int(row["extra_copies"])}


def delivery_delay(db: Database) -> pd.DataFrame:
    """received_at - timestamp by bucket: how late events arrive (offline clients, queues, clock skew)."""
    frame = db.frame(db.sql.delivery_delay)
    frame["bucket"] = [DELAY_BUCKETS[int(i)] for i in frame["bucket"]]
    frame = frame.set_index("bucket").sort_index(key=lambda labels: labels.map(DELAY_BUCKETS.index))
    frame["share"] = frame["events"] / frame["events"].sum()
    return frame


def late_share(delays: pd.DataFrame, threshold_seconds: float = 3600) -> float:
    """Share of events received at least threshold_seconds after they happened, from delivery_delay's
    buckets (so threshold_seconds is one of their edges: 1, 60, 3600 or 86400)."""
    late = delays.loc[delays["min_seconds"] >= threshold_seconds, "events"].sum()
    total = delays["events"].sum()
    return float(late / total) if total else 0.0


def missing_values(db: Database) -> pd.Series:
    """Rows with NULL (or empty text, or '{}' metadata) per column. sent_at is optional by design."""
    row = db.row(db.sql.missing_values)
    return pd.Series({k: int(v or 0) for k, v in row.items()}, name="missing")
