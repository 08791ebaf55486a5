"""Read-only access to the event store from a database URL, and the one way queries are run.

The analysis never imports the service: it knows only the table layout (events: event_id, user_id, action,
source, timestamp, received_at, sent_at, metadata, with fixed-width UTC text timestamps) and the URL forms
the service accepts. Each backend brings its connection and its own SQL texts (analysis/sql/<backend>.py);
the analysis modules ask for queries by name and never hold SQL themselves.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from analysis.sql import sqlite as sqlite_sql
from analysis.sql.queries import Queries


class DatabaseNotFound(FileNotFoundError):
    """The URL points at a database file that does not exist (analysis never creates one)."""


class UnsupportedDatabaseUrl(ValueError):
    """The URL names a backend the analysis package cannot read (yet)."""


class _DbApiConnection(Protocol):
    def cursor(self) -> Any: ...
    def close(self) -> None: ...


@dataclass(slots=True)
class Database:
    """A read-only connection plus the SQL texts of its backend."""

    connection: _DbApiConnection
    sql: Queries
    url: str

    def frame(
        self, query: str, params: Mapping[str, Any] | None = None, columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Run one query; the result is an aggregate, so it fits in memory whatever the table size."""
        cursor = self.connection.cursor()
        try:
            cursor.execute(query, dict(params or {}))
            names = list(columns) if columns else [d[0] for d in cursor.description]
            return pd.DataFrame.from_records(cursor.fetchall(), columns=names)
        finally:
            cursor.close()

    def row(self, query: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The single row of a query, as a dict keyed by column name."""
        frame = self.frame(query, params)
        return {str(k): _plain(v) for k, v in frame.iloc[0].items()} if len(frame) else {}

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _plain(value: Any) -> Any:
    """numpy scalars to Python numbers, so callers get plain numbers."""
    return value.item() if hasattr(value, "item") else value


def sqlite_path(url: str) -> Path:
    """sqlite:///relative.db or sqlite:////absolute.db -> the file path, as the service reads them."""
    raw = url.removeprefix("sqlite:///")
    if raw == url or not raw:
        raise UnsupportedDatabaseUrl(f"not a sqlite URL with a file path: {url!r}")
    return Path(raw)


def _open_sqlite(url: str) -> Database:
    path = sqlite_path(url)
    if not path.is_file():
        raise DatabaseNotFound(f"no database file at {path} (from {url})")
    # mode=ro: the analysis cannot write, whatever a query says; query_only guards against attached files.
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    connection.execute("PRAGMA query_only = ON")
    return Database(connection, sqlite_sql.QUERIES, url)


def connect(database_url: str) -> Database:
    """Open the event store read-only: sqlite:///PATH or postgresql://... (the URLs the service takes)."""
    if database_url.startswith("sqlite:///"):
        return _open_sqlite(database_url)
    if database_url.startswith(("postgresql://", "postgres://")):
        from analysis.sql.postgres import open_postgres  # only a PostgreSQL user loads the driver

        return open_postgres(database_url)
    raise UnsupportedDatabaseUrl(f"unsupported database URL {database_url!r}: use sqlite:///PATH or postgresql://...")
