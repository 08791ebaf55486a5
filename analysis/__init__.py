"""Historical analysis of the stored events: a read-only, tested package the notebook calls.

    from analysis import connect, Filter, Breakdown, trends, funnel, retention
    with connect("sqlite:///./data/telemetry.db") as db:
        trends.trends(db, interval="week", where=Filter(source="ios"), breakdown=Breakdown.by_property("plan"))

Every function takes the Database first and an optional `where: Filter`; trends, funnel and retention
also take a `breakdown: Breakdown`. The work runs in DuckDB on a columnar copy of the events loaded once
per connection (analysis/db.py); every function returns an aggregate or a bounded sample.
"""

from analysis import funnel, lifecycle, metadata, quality, retention, sessions, temporal, trends, usage
from analysis.db import Database, DatabaseNotFound, UnsupportedDatabaseUrl, connect
from analysis.filters import Breakdown, Filter

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
