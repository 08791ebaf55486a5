"""One filter and one breakdown that every analysis accepts.

    from analysis import Filter, Breakdown
    only_ios_pro = Filter(source="ios", properties={"plan": "pro"}, start=datetime(2026, 1, 12, tzinfo=UTC))
    trends.trends(db, where=only_ios_pro, breakdown=Breakdown.by_property("plan", top=3))

A filter keeps the events that match all of its parts: a time range [start, end), one source or several,
one action or several, and metadata properties equal to given values. A breakdown splits results by the
source or by one metadata property: its `top` most frequent values (among the filtered events) keep
their name, every other value becomes "other", an event without the property "(none)".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analysis.db import Database

OTHER = "other"
NONE = "(none)"
Scalar = str | int | float | bool | None


def _names(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return (value,) if isinstance(value, str) else tuple(value)


def _naive_utc(moment: datetime | None) -> datetime | None:
    """The engine holds naive UTC timestamps; an aware bound is converted, a naive one is taken as UTC."""
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def property_text(value: Scalar) -> str | None:
    """A metadata value as the engine compares it: DuckDB's json_extract_string of that JSON value."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


@dataclass(frozen=True, slots=True)
class Filter:
    """Which events an analysis counts. Every part is optional; an empty Filter keeps every event."""

    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive
    source: str | Sequence[str] | None = None
    action: str | Sequence[str] | None = None
    properties: Mapping[str, Scalar] = field(default_factory=lambda: MappingProxyType({}))

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        """start and end as the engine compares them: naive UTC."""
        return _naive_utc(self.start), _naive_utc(self.end)

    def column_sql(self, alias: str = "e", time_column: str = "ts") -> tuple[str, list[Any]]:
        """The time range, source and action parts as a condition over `alias` (every part but the
        properties), the time compared on `time_column`."""
        parts: list[str] = []
        params: list[Any] = []
        start, end = self.bounds()
        if start is not None:
            parts.append(f"{alias}.{time_column} >= ?")
            params.append(start)
        if end is not None:
            parts.append(f"{alias}.{time_column} < ?")
            params.append(end)
        for column, names in (("source", _names(self.source)), ("action", _names(self.action))):
            if names is not None:
                parts.append(f"{alias}.{column} IN ({', '.join('?' for _ in names)})" if names else "FALSE")
                params.extend(names)
        return (" AND ".join(parts) or "TRUE"), params

    def sql(self, db: Database, alias: str = "e") -> tuple[str, list[Any]]:
        """A WHERE condition over the engine's events table (aliased `alias`) and its parameters."""
        condition, params = self.column_sql(alias)
        parts = [condition]
        for key, value in self.properties.items():
            table = property_table(db, key)
            if value is None:
                parts.append(f"{alias}.seq NOT IN (SELECT seq FROM {table} WHERE value IS NOT NULL)")
            else:
                parts.append(f"{alias}.seq IN (SELECT seq FROM {table} WHERE value = ?)")
                params.append(property_text(value))
        return " AND ".join(parts), params


EVERYTHING = Filter()


@dataclass(frozen=True, slots=True)
class Breakdown:
    """Split an analysis by `source` or by one metadata property, keeping the `top` values by events."""

    key: str | None = None  # a metadata key; None: by source
    top: int = 5

    @staticmethod
    def by_source(top: int = 5) -> Breakdown:
        return Breakdown(None, top)

    @staticmethod
    def by_property(key: str, top: int = 5) -> Breakdown:
        return Breakdown(key, top)

    @property
    def name(self) -> str:
        return "source" if self.key is None else self.key

    def expression(self, db: Database, alias: str = "e") -> tuple[str, str]:
        """(the raw per-event value as SQL, a LEFT JOIN clause it needs or '')."""
        if self.key is None:
            return f"{alias}.source", ""
        table = property_table(db, self.key)
        return f"coalesce(bp.value, '{NONE}')", f"LEFT JOIN {table} bp ON bp.seq = {alias}.seq"


def filter_sql(db: Database, where: Filter | None, alias: str = "e") -> tuple[str, list[Any]]:
    """The WHERE condition of a filter (every event without one) over events aliased `alias`."""
    return (where or EVERYTHING).sql(db, alias)


def filtered_events(db: Database, where: Filter | None, breakdown: Breakdown | None = None) -> tuple[str, list[Any]]:
    """A subquery of the filtered events (seq, user_id, action, source, ts, session_id, segment), where
    segment is the breakdown value (top values kept, the rest 'other'; '' without a breakdown)."""
    condition, params = (where or EVERYTHING).sql(db)
    if breakdown is None:
        columns = "e.seq, e.user_id, e.action, e.source, e.ts, e.session_id, '' AS segment"
        return f"SELECT {columns} FROM events e WHERE {condition}", params
    value, join = breakdown.expression(db)
    query = f"""
        WITH picked AS (SELECT e.seq, e.user_id, e.action, e.source, e.ts, e.session_id, {value} AS raw
                        FROM events e {join} WHERE {condition}),
             kept AS (SELECT raw FROM picked GROUP BY raw ORDER BY COUNT(*) DESC, raw LIMIT {int(breakdown.top)})
        SELECT seq, user_id, action, source, ts, session_id,
               CASE WHEN raw IN (SELECT raw FROM kept) THEN raw ELSE '{OTHER}' END AS segment
        FROM picked
    """
    return query, params


def property_table(db: Database, key: str) -> str:
    """The engine table (seq, value, type) of one metadata key's values, built on first use.

    Only rows whose metadata text names the key are read back from the store (a byte search there, a JSON
    parse here), so a rare key is cheap; value is DuckDB's json_extract_string (text of any scalar),
    type its JSON type.
    """
    name = "property_" + hashlib.sha256(key.encode()).hexdigest()[:16]
    if db.derived_table(name):
        from analysis.properties import load_property

        load_property(db, key, name)
    return name
