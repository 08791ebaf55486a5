"""Storage adapters behind one port, EventRepository."""

from __future__ import annotations

from app.database.connection import SynchronousMode, parse_database_url
from app.repository.events_repository import EventRepository, SqliteEventRepository


def open_repository(
    database_url: str, *, synchronous: SynchronousMode = "FULL", busy_timeout_ms: int = 5000
) -> EventRepository:
    """The repository for a database URL: sqlite:///PATH or postgresql://..."""
    target = parse_database_url(database_url)
    if target.sqlite_path is not None:
        return SqliteEventRepository(target.sqlite_path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms)
    raise NotImplementedError("the PostgreSQL backend is not available in this build")
