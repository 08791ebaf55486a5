"""Data quality: how much there is, over what span, and what looks wrong (duplicates, late events, gaps)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd

from analysis import repeats, rollups
from analysis.db import Database
from analysis.filters import Filter, filter_sql
from analysis.properties import metadata_rows

DELAY_BUCKETS = ("negative (client clock ahead)", "< 1 s", "1 s - 1 min", "1 min - 1 h", "1 h - 1 day", ">= 1 day")


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None else None


def overview(db: Database, where: Filter | None = None) -> dict[str, Any]:
    """Counts and time span: events, users, actions, sources, first/last event and receipt, span in days."""
    days = rollups.day_rows(db, where)
    if days is not None:
        rows, params = days
        query = f"""SELECT coalesce(SUM(events), 0)::BIGINT AS events, COUNT(DISTINCT user_id) AS users,
                           COUNT(DISTINCT action) AS actions, COUNT(DISTINCT source) AS sources,
                           MIN(first_ts) AS first_timestamp, MAX(last_ts) AS last_timestamp,
                           MIN(first_received) AS first_received_at, MAX(last_received) AS last_received_at
                    FROM ({rows})"""
    else:
        condition, params = filter_sql(db, where)
        query = f"""SELECT COUNT(*) AS events, COUNT(DISTINCT user_id) AS users, COUNT(DISTINCT action) AS actions,
                           COUNT(DISTINCT source) AS sources, MIN(ts) AS first_timestamp, MAX(ts) AS last_timestamp,
                           MIN(received) AS first_received_at, MAX(received) AS last_received_at
                    FROM events e WHERE {condition}"""
    row = db.row(query, params)
    for key in ("first_timestamp", "last_timestamp", "first_received_at", "last_received_at"):
        row[key] = _aware(row[key])
    first, last = row["first_timestamp"], row["last_timestamp"]
    row["span_days"] = (last - first).total_seconds() / 86400 if first and last else 0.0
    return row


def duplicate_event_ids(db: Database) -> dict[str, int]:
    """event_ids stored more than once (the store forbids it, so anything but 0 is a broken store).
    Asked of the store itself, through its unique index: the engine holds no event ids (a warm cache keeps
    the answer while the store is unchanged)."""

    def ask() -> dict[str, int]:
        ids, extra = db.store_rows(db.sql.duplicate_event_ids)[0]
        return {"ids": int(ids), "extra_rows": int(extra)}

    answer: dict[str, int] = db.remembered("duplicate_event_ids", ask)
    return answer


def probable_retries(db: Database, where: Filter | None = None) -> dict[str, int]:
    """Same user, action, source, timestamp and metadata under different event_ids: a client that retried
    with a fresh id. Counted, not removed: the store keeps every fact it was given.

    Candidates (same user, action, source and timestamp) come from the engine; only their metadata is read
    back from the store to compare."""
    if db.rollups and not (where and where.properties):
        # kept (analysis/repeats.py): a filter on time, source or action keeps a group whole or not at all
        condition, params = (where or Filter()).column_sql("r")
        query = f"SELECT r.seq, r.user_id, r.action, r.source, r.ts FROM {repeats.table_for(db)} r WHERE {condition}"
    else:
        condition, params = filter_sql(db, where)
        query = f"""WITH twice AS (SELECT user_id, action, source, ts FROM events e WHERE {condition}
                                   GROUP BY ALL HAVING COUNT(*) > 1)
                    SELECT e.seq, e.user_id, e.action, e.source, e.ts FROM events e
                    SEMI JOIN twice t
                         ON t.user_id = e.user_id AND t.action = e.action AND t.source = e.source AND t.ts = e.ts
                    WHERE {condition}"""
        params = [*params, *params]
    candidates = db.frame(query, params)
    if candidates.empty:
        return {"groups": 0, "extra_copies": 0}
    rows = candidates.merge(metadata_rows(db, candidates["seq"]), on="seq")
    sizes = rows.groupby(["user_id", "action", "source", "ts", "metadata"]).size()
    repeated = sizes[sizes > 1]
    return {"groups": len(repeated), "extra_copies": int((repeated - 1).sum())}


def delivery_delay(db: Database, where: Filter | None = None) -> pd.DataFrame:
    """received_at - timestamp by bucket: how late events arrive (offline clients, queues, clock skew).
    Exact to the microsecond."""
    condition, params = filter_sql(db, where)
    frame = db.frame(
        f"""SELECT (d >= 0)::INT + (d >= 1000000)::INT + (d >= 60000000)::INT + (d >= 3600000000)::INT
                   + (d >= 86400000000)::INT AS bucket,
                   COUNT(*) AS events, MIN(d) / 1e6 AS min_seconds, MAX(d) / 1e6 AS max_seconds,
                   AVG(d) / 1e6 AS mean_seconds
            FROM (SELECT epoch_us(received) - epoch_us(ts) AS d FROM events e WHERE {condition})
            GROUP BY bucket ORDER BY bucket""",
        params,
    )
    frame["bucket"] = [DELAY_BUCKETS[int(i)] for i in frame["bucket"]]
    frame = frame.set_index("bucket")
    frame["share"] = frame["events"] / frame["events"].sum()
    return frame


def late_share(delays: pd.DataFrame, threshold_seconds: float = 3600) -> float:
    """Share of events received at least threshold_seconds after they happened, from delivery_delay's
    buckets (so threshold_seconds is one of their edges: 1, 60, 3600 or 86400)."""
    late = delays.loc[delays["min_seconds"] >= threshold_seconds, "events"].sum()
    total = delays["events"].sum()
    return float(late / total) if total else 0.0


def missing_values(db: Database, where: Filter | None = None) -> pd.Series:
    """Rows with an empty value per column (the store's schema makes ids and times NOT NULL); sent_at is
    optional by design, metadata '{}' counts as empty."""
    days = rollups.day_rows(db, where)
    if days is not None:
        rows, params = days
        query = f"""SELECT SUM(events) FILTER (WHERE user_id = '') AS user_id, SUM(events) FILTER (WHERE action = '')
                           AS action, SUM(events) FILTER (WHERE source = '') AS source, SUM(no_sent_at) AS sent_at,
                           SUM(metadata_empty) AS metadata
                    FROM ({rows})"""
    else:
        condition, params = filter_sql(db, where)
        query = f"""SELECT COUNT(*) FILTER (WHERE user_id = '') AS user_id, COUNT(*) FILTER (WHERE action = '')
                           AS action, COUNT(*) FILTER (WHERE source = '') AS source,
                           COUNT(*) FILTER (WHERE no_sent_at) AS sent_at, COUNT(*) FILTER (WHERE metadata_empty)
                           AS metadata
                    FROM events e WHERE {condition}"""
    row = db.row(query, params)
    return pd.Series({k: int(v or 0) for k, v in row.items()}, name="missing")
