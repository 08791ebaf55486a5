"""Read-only access to the event store from a database URL, and the engine every analysis runs on.

The analysis never imports the service: it knows only the table layout (events: seq, event_id, user_id,
action, source, timestamp, received_at, sent_at, metadata) and the URL forms the service accepts.

Every analysis runs in DuckDB, in memory, on one columnar copy of the events that `Database.engine()`
loads from the store on first use (Arrow batches through ADBC, a few seq ranges read in parallel; see
analysis/load.py). One engine and one SQL dialect for every backend: the answers on SQLite and
PostgreSQL are equal by construction, and the store sees one sequential read per report instead of a
scan per question. The store connection stays open, read-only, for the few look-ups that need columns
the copy leaves out (metadata text of chosen rows).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from analysis.cache import CacheUse
from analysis.sql import postgres as postgres_sql
from analysis.sql import sqlite as sqlite_sql
from analysis.sql.store import StoreQueries
from analysis.store import DatabaseNotFound, DbApiConnection, UnsupportedDatabaseUrl, open_store, sqlite_path

__all__ = ["Database", "DatabaseNotFound", "UnsupportedDatabaseUrl", "connect", "sqlite_path"]


@dataclass(slots=True)
class Database:
    """A read-only store connection, the SQL texts of its backend, and the lazily loaded engine."""

    connection: DbApiConnection
    sql: StoreQueries
    url: str
    adbc_uri: str  # the same store, as the ADBC driver opens it for the bulk read
    backend: str  # "sqlite" or "postgresql"
    # Where the engine's columnar copy is kept between runs (analysis/cache.py); None: loaded every time.
    cache_directory: Path | None = None
    cache_use: CacheUse | None = None  # how the engine got its events, once it is loaded
    # Whether questions read the per user-day rollup (analysis/rollups.py) when their filter allows; off,
    # every question reads the events (the benchmark's and the tests' reference).
    rollups: bool = True
    _engine: duckdb.DuckDBPyConnection | None = field(default=None, repr=False)
    _through: int = field(default=0, repr=False)
    _spill: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)
    _derived: set[str] = field(default_factory=set, repr=False)

    def engine(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection holding the `events` table (loaded on first call; see analysis/load.py)."""
        if self._engine is None:
            self._spill = tempfile.TemporaryDirectory(prefix="telemetry-analysis-")
            if self.cache_directory is not None:
                from analysis.cache import open_engine

                self._engine, self._through, self.cache_use = open_engine(self, self.cache_directory, self._spill.name)
            else:
                from analysis.load import load_events

                self._engine, self._through = load_events(self, self._spill.name)
                self.cache_use = CacheUse("off")
        return self._engine

    @property
    def cached(self) -> bool:
        """Whether the engine works on the cache file (derived copies of store data may be kept there)."""
        self.engine()
        return self.cache_use is not None and self.cache_use.state in {"warm", "cold", "rebuilt"}

    @property
    def through(self) -> int:
        """The last seq the engine holds: look-ups of the store stop there, so they match the engine's rows."""
        self.engine()
        return self._through

    def frame(self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run one engine (DuckDB) query; every analysis query returns an aggregate or a bounded sample."""
        cursor = self.engine().cursor()
        try:
            return cursor.execute(query, params if params is not None else []).df()
        finally:
            cursor.close()

    def row(self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The single row of an engine query, as a dict of plain Python values."""
        cursor = self.engine().cursor()
        try:
            result = cursor.execute(query, params if params is not None else [])
            names = [d[0] for d in result.description or []]
            values = result.fetchone()
            return dict(zip(names, values, strict=True)) if values else {}
        finally:
            cursor.close()

    def store_rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one query on the store itself (read-only), in its driver's parameter style."""
        cursor = self.connection.cursor()
        try:
            cursor.execute(query, tuple(params))
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def remembered(self, name: str, compute: Callable[[], Any]) -> Any:
        """compute(), a JSON value asked of the store itself; with a cache, kept there and reused while the
        store holds the very rows the engine does (so a warm run does not ask again)."""
        if not self.cached:
            return compute()
        from analysis.cache import remember_answer, remembered_answer

        kept = remembered_answer(self.engine(), name, self.through)
        if kept is not None:
            return json.loads(kept)
        answer = compute()
        remember_answer(self.engine(), name, self.through, json.dumps(answer))
        return answer

    def derived_table(self, name: str) -> bool:
        """True the first time a derived engine table `name` is asked for (the caller then builds it)."""
        if name in self._derived:
            return False
        self._derived.add(name)
        return True

    def kept_table(
        self,
        name: str,
        create: Callable[[duckdb.DuckDBPyConnection, str], None],
        fill: Callable[[duckdb.DuckDBPyConnection, str, str], None],
    ) -> str:
        """A table derived from the events (rollups, sessions, repeats): the cache file's, which analysis/cache.py
        keeps current, or without a cache one built in memory on first use (create, then fill from `events`)."""
        if not self.cached and self.derived_table(name):
            engine = self.engine()
            create(engine, name)
            fill(engine, name, "events")
        return name

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        if self._spill is not None:
            self._spill.cleanup()
            self._spill = None
        self.connection.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def connect(database_url: str, cache: Path | str | None = None, *, rollups: bool = True) -> Database:
    """Open the event store read-only: sqlite:///PATH or postgresql://... (the URLs the service takes).

    cache: a directory where the engine's columnar copy of the events is kept between runs (see
    analysis/cache.py; `analysis.cache.default_directory()` is the user's cache directory); None loads
    every event from the store each time. rollups=False: every question reads the events, none the per
    user-day rollup (analysis/rollups.py; the answers are the same)."""
    store = open_store(database_url)
    queries = sqlite_sql.QUERIES if store.backend == "sqlite" else postgres_sql.QUERIES
    db = Database(store.connection, queries, database_url, store.adbc_uri, store.backend)
    db.cache_directory = Path(cache) if cache is not None else None
    db.rollups = rollups
    return db
