"""Opening the event store read-only from a database URL: the driver's connection and nothing else.

No engine, no pandas: `python -m app report` asks the store whether it holds any event before it starts the
notebook's kernel, and that question should cost the command a driver, not DuckDB's and pandas' imports
(a second of CPU on a slow machine, spent before the kernel even starts). analysis/db.py builds the
`Database` the questions take on the same opening.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


class DatabaseNotFound(FileNotFoundError):
    """The URL points at a database file that does not exist (analysis never creates one)."""


class UnsupportedDatabaseUrl(ValueError):
    """The URL names a backend the analysis package cannot read (yet)."""


class DbApiConnection(Protocol):
    def cursor(self) -> Any: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Store:
    """A read-only connection to the store, and how the bulk reader (ADBC) opens the same store."""

    connection: DbApiConnection
    adbc_uri: str
    backend: str  # "sqlite" or "postgresql"

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def sqlite_path(url: str) -> Path:
    """sqlite:///relative.db or sqlite:////absolute.db -> the file path, as the service reads them."""
    raw = url.removeprefix("sqlite:///")
    if raw == url or not raw:
        raise UnsupportedDatabaseUrl(f"not a sqlite URL with a file path: {url!r}")
    return Path(raw)


def _open_sqlite(url: str) -> Store:
    path = sqlite_path(url)
    if not path.is_file():
        raise DatabaseNotFound(f"no database file at {path} (from {url})")
    uri = f"{path.resolve().as_uri()}?mode=ro"
    # mode=ro: the analysis cannot write, whatever a query says; query_only guards against attached files.
    connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
    connection.execute("PRAGMA query_only = ON")
    return Store(connection, uri, "sqlite")


def _open_postgres(url: str) -> Store:
    import psycopg  # imported here: reading SQLite needs no PostgreSQL driver

    connection = psycopg.connect(url, autocommit=True)
    # Read-only for the whole session: the analysis cannot write, whatever a query says.
    connection.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    found = connection.execute("SELECT to_regclass('events') IS NOT NULL").fetchone()
    if not (found and found[0]):
        connection.close()
        raise DatabaseNotFound(f"no events table in the PostgreSQL database at {url} (has the service run?)")
    return Store(connection, url, "postgresql")


def open_store(database_url: str) -> Store:
    """The store read-only: sqlite:///PATH or postgresql://... (the URLs the service takes)."""
    if database_url.startswith("sqlite:///"):
        return _open_sqlite(database_url)
    if database_url.startswith(("postgresql://", "postgres://")):
        return _open_postgres(database_url)
    raise UnsupportedDatabaseUrl(f"unsupported database URL {database_url!r}: use sqlite:///PATH or postgresql://...")


def has_events(database_url: str) -> bool:
    """Whether the store holds any event: the first row answers (no scan)."""
    with open_store(database_url) as store:
        cursor = store.connection.cursor()
        try:
            cursor.execute("SELECT EXISTS (SELECT 1 FROM events)")
            row = cursor.fetchone()
        finally:
            cursor.close()
        return bool(row and row[0])
