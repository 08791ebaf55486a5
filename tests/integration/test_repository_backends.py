"""The repository contract run against each backend (fake, SQLite, PostgreSQL), plus what only SQLite promises.

What only PostgreSQL promises (schema, migrations, outages) is in test_postgres_schema.py."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.repository.memory import InMemoryEventRepository
from app.repository.port import Cursor, EventFilter, EventQuery, Order, StorageError, StorageUnavailable
from app.repository.postgres import PostgresEventRepository
from app.repository.sqlite import SCHEMA_VERSION, SqliteEventRepository
from tests.integration.repository_contract import T0, RepositoryContract, RepositoryFactory, make_event
from tests.support.postgres import fresh_schema


class TestInMemoryRepository(RepositoryContract):
    @pytest.fixture
    def make_repository(self) -> RepositoryFactory:
        shared = InMemoryEventRepository()  # no store outside the process: "another replica" is itself
        return lambda: shared


class TestSqliteRepository(RepositoryContract):
    @pytest.fixture
    def make_repository(self, tmp_path: Path) -> Iterator[RepositoryFactory]:
        opened: list[SqliteEventRepository] = []

        def make() -> SqliteEventRepository:
            opened.append(SqliteEventRepository(tmp_path / "events.db"))
            return opened[-1]

        yield make
        for repo in opened:
            repo.close()


class TestPostgresRepository(RepositoryContract):
    """A fresh schema per test on the real server (tests/support/postgres.py), dropped afterwards."""

    @pytest.fixture
    def make_repository(self) -> Iterator[RepositoryFactory]:
        opened: list[PostgresEventRepository] = []
        with fresh_schema("contract") as url:

            def make() -> PostgresEventRepository:
                opened.append(PostgresEventRepository(url, pool_max_size=4))
                return opened[-1]

            yield make
            for repo in opened:
                repo.close()


@pytest.fixture
def sqlite_repo(tmp_path: Path) -> Iterator[SqliteEventRepository]:
    repo = SqliteEventRepository(tmp_path / "data" / "events.db")
    yield repo
    repo.close()


def raw(repo: SqliteEventRepository) -> sqlite3.Connection:
    return sqlite3.connect(repo.path, isolation_level=None)


def test_folder_is_created_and_wal_mode_with_busy_timeout(sqlite_repo: SqliteEventRepository) -> None:
    assert sqlite_repo.path.parent.is_dir()
    conn = sqlite_repo._connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_schema_version_is_recorded_once_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    SqliteEventRepository(path).close()
    SqliteEventRepository(path).close()
    rows = sqlite3.connect(path).execute("SELECT version FROM schema_version").fetchall()
    assert rows == [(v,) for v in range(1, SCHEMA_VERSION + 1)]


def test_database_refuses_update_and_delete(sqlite_repo: SqliteEventRepository) -> None:
    event = make_event()
    sqlite_repo.add([event])
    conn = raw(sqlite_repo)
    with pytest.raises(sqlite3.IntegrityError, match="immutable"):
        conn.execute("UPDATE events SET action = 'x'")
    with pytest.raises(sqlite3.IntegrityError, match="immutable"):
        conn.execute("DELETE FROM events")
    assert sqlite_repo.get(event.event_id) == event


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize(
    ("flt", "index"),
    [
        (EventFilter(), "events_timestamp"),
        (EventFilter(user_id="u1"), "events_user_timestamp"),
        (EventFilter(action="click"), "events_action_timestamp"),
    ],
)
def test_query_plans_use_an_index(
    sqlite_repo: SqliteEventRepository, flt: EventFilter, index: str, order: Order
) -> None:
    from app.repository.sqlite import _COLUMNS, _ORDER_BY, _where

    where, params = _where(flt, Cursor(T0, uuid.uuid4()), order)
    plan = raw(sqlite_repo).execute(
        f"EXPLAIN QUERY PLAN SELECT {_COLUMNS} FROM events{where} ORDER BY {_ORDER_BY[order]} LIMIT 10", params
    )
    text = " ".join(str(row[-1]) for row in plan)
    assert index in text
    assert "TEMP B-TREE" not in text  # served in index order, no sort of the whole table


def test_events_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    repo = SqliteEventRepository(path)
    events = [make_event() for _ in range(3)]
    repo.add(events)
    repo.close()
    reopened = SqliteEventRepository(path)
    assert {e.event_id for e in reopened.iter_events(EventQuery())} == {e.event_id for e in events}
    reopened.close()


def test_sqlite_errors_reach_callers_as_the_ports_errors(tmp_path: Path) -> None:
    """The service and the HTTP edge see StorageUnavailable / StorageError, never sqlite3's exceptions."""
    path = tmp_path / "events.db"
    repo = SqliteEventRepository(path, busy_timeout_ms=20, checkpoint_interval_s=None)
    try:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock for longer than the timeout
        with pytest.raises(StorageUnavailable, match="locked") as caught:
            repo.add([make_event()])
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        with pytest.raises(StorageUnavailable):
            repo.check_writable()
        holder.execute("ROLLBACK")
        holder.execute("DROP TABLE events")  # reads too: a store whose table is gone
        with pytest.raises(StorageError):
            repo.query(EventQuery())
        with pytest.raises(StorageError):
            repo.get(make_event().event_id)
        holder.close()
    finally:
        repo.close()


def test_an_unwritable_in_memory_store_raises_the_ports_error() -> None:
    repo = InMemoryEventRepository()
    repo.writable = False
    with pytest.raises(StorageUnavailable):
        repo.add([make_event()])
