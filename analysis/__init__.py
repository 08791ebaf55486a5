"""Historical analysis of the stored events: a read-only, tested package the notebook calls.

    from analysis import connect, quality, usage, temporal, metadata, funnel, retention
    with connect("sqlite:///./data/telemetry.db") as db:
        usage.action_counts(db)

Aggregation happens in SQL: every function returns an aggregate (bounded by actions, hours, users or
cohorts, never by raw events), so memory stays bounded however large the table grows.
"""

from analysis import funnel, metadata, quality, retention, temporal, usage
from analysis.db import Database, DatabaseNotFound, UnsupportedDatabaseUrl, connect

__all__ = [
    "Database",
    "DatabaseNotFound",
    "UnsupportedDatabaseUrl",
    "connect",
    "funnel",
    "metadata",
    "quality",
    "retention",
    "temporal",
    "usage",
]
