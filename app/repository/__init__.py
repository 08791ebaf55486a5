"""Storage adapters behind one port, EventRepository."""

from __future__ import annotations

from app.database.connection import SynchronousMode, parse_database_url
from app.repository.events_repository import EventRepository, SqliteEventRepository


def open_repository(
    database_url: str,
    *,
    synchronous: SynchronousMode = "FULL",
    busy_timeout_ms: int = 5000,
    wal_size_limit: int | None = None,
    postgres_pool_max_size: int = 8,
    postgres_acquire_timeout_s: float = 2.0,
) -> EventRepository:
    """The repository for a database URL: sqlite:///PATH or postgresql://..."""
    target = parse_database_url(database_url)
    if target.sqlite_path is not None:
        return SqliteEventRepository(
            target.sqlite_path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms, wal_size_limit=wal_size_limit
        )
    # Imported here: a SQLite deployment never loads the PostgreSQL driver.
    from app.repository.postgres_repository import PostgresEventRepository

    return PostgresEventRepository(
        target.url, pool_max_size=postgres_pool_max_size, acquire_timeout_s=postgres_acquire_timeout_s
    )
