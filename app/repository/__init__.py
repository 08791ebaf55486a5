"""Storage adapters behind one port (port.py): sqlite.py, postgres.py, memory.py, and the group-commit writer.

This module only picks a backend for a database URL; each backend's driver is imported when that backend
is opened, so importing the port never loads sqlite3 or psycopg.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from app.repository.port import EventRepository


class UnsupportedDatabaseUrl(ValueError):
    """The database URL names a backend this service does not speak."""


@dataclass(frozen=True, slots=True)
class DatabaseUrl:
    scheme: str  # "sqlite" or "postgresql"
    url: str
    sqlite_path: Path | None = None


def parse_database_url(url: str) -> DatabaseUrl:
    """Accepts sqlite:///relative.db, sqlite:////absolute.db and postgresql://... URLs."""
    if url.startswith("sqlite:///"):
        raw = url.removeprefix("sqlite:///")
        if not raw:
            raise UnsupportedDatabaseUrl("sqlite URL needs a file path: sqlite:///./data/telemetry.db")
        return DatabaseUrl("sqlite", url, Path(raw))
    if url.startswith(("postgresql://", "postgres://")):
        return DatabaseUrl("postgresql", url)
    raise UnsupportedDatabaseUrl(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://...")


def open_repository(
    database_url: str,
    *,
    synchronous: Literal["FULL", "NORMAL"] = "FULL",
    busy_timeout_ms: int = 5000,
    wal_size_limit: int | None = None,
    postgres_pool_max_size: int = 8,
    postgres_acquire_timeout_s: float = 2.0,
    postgres_read_pool_max_size: int = 4,
    read_statement_timeout_s: float | None = None,
    postgres_startup_timeout_s: float = 30.0,
) -> EventRepository:
    """The repository for a database URL: sqlite:///PATH or postgresql://..."""
    target = parse_database_url(database_url)
    if target.sqlite_path is not None:
        from app.repository.sqlite import SqliteEventRepository

        return SqliteEventRepository(
            target.sqlite_path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms, wal_size_limit=wal_size_limit
        )
    # A SQLite deployment never loads the PostgreSQL driver.
    from app.repository.postgres import PostgresEventRepository

    return PostgresEventRepository(
        target.url,
        pool_max_size=postgres_pool_max_size,
        acquire_timeout_s=postgres_acquire_timeout_s,
        read_pool_max_size=postgres_read_pool_max_size,
        read_statement_timeout_s=read_statement_timeout_s,
        startup_timeout_s=postgres_startup_timeout_s,
    )
