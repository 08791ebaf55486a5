"""Historical analysis of the stored events: a read-only, tested package the notebook calls.

    from analysis import connect, Filter, Breakdown, trends, funnel, retention
    with connect("sqlite:///./data/telemetry.db") as db:
        trends.trends(db, interval="week", where=Filter(source="ios"), breakdown=Breakdown.by_property("plan"))

Every function takes the Database first and an optional `where: Filter`; trends, funnel and retention
also take a `breakdown: Breakdown`. The work runs in DuckDB on a columnar copy of the events loaded once
per connection (analysis/db.py); every function returns an aggregate or a bounded sample.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analysis import funnel, lifecycle, metadata, quality, retention, sessions, temporal, trends, usage
    from analysis.db import Database, connect
    from analysis.filters import Breakdown, Filter
    from analysis.store import DatabaseNotFound, UnsupportedDatabaseUrl

# Loaded on first use (PEP 562): a process that needs one module (the report's chart workers import
# analysis.charts and matplotlib alone) does not pay for DuckDB, pandas and every question module.
_SUBMODULES = frozenset(
    {"funnel", "lifecycle", "metadata", "quality", "retention", "sessions", "temporal", "trends", "usage"}
)
_NAMES = {
    "Database": "analysis.db", "DatabaseNotFound": "analysis.store", "UnsupportedDatabaseUrl": "analysis.store",
    "connect": "analysis.db", "Breakdown": "analysis.filters", "Filter": "analysis.filters",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"analysis.{name}")
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")


__all__ = [
    "Breakdown",
    "Database",
    "DatabaseNotFound",
    "Filter",
    "UnsupportedDatabaseUrl",
    "connect",
    "funnel",
    "lifecycle",
    "metadata",
    "quality",
    "retention",
    "sessions",
    "temporal",
    "trends",
    "usage",
]
