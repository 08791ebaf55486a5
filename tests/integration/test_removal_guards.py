"""Only the erasure and retention paths remove events: what each backend's schema enforces beyond the contract.

SQLite: a DELETE passes only while the removal marker exists inside the removing transaction; erased data is
not left readable in the database file or the WAL. PostgreSQL: only the SECURITY DEFINER functions may
remove, even for a role that may INSERT; one replica at a time holds the retention lock.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from app.repository.port import EventQuery
from app.repository.postgres import PostgresEventRepository
from app.repository.sqlite import SqliteEventRepository
from tests.integration.repository_contract import T0, make_event
from tests.support.postgres import fresh_schema

SECRET = "needle-7f3a9c-user"  # a user_id, and text in metadata, that must not survive its erasure


# -- SQLite -------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_repo(tmp_path: Path) -> Iterator[SqliteEventRepository]:
    repo = SqliteEventRepository(tmp_path / "events.db")
    yield repo
    repo.close()


def raw(repo: SqliteEventRepository) -> sqlite3.Connection:
    return sqlite3.connect(repo.path, isolation_level=None)


def test_sqlite_refuses_ad_hoc_update_and_delete_after_an_erasure(sqlite_repo: SqliteEventRepository) -> None:
    kept = make_event(user_id="kept")
    sqlite_repo.add([kept, make_event(user_id="gone")])
    assert sqlite_repo.erase_user("gone", key_name="ops", suppress=False, at=T0).events_removed == 1
    conn = raw(sqlite_repo)
    with pytest.raises(sqlite3.IntegrityError, match="immutable"):
        conn.execute("DELETE FROM events WHERE user_id = 'kept'")
    with pytest.raises(sqlite3.IntegrityError, match="immutable"):
        conn.execute("UPDATE events SET action = 'x'")
    assert conn.execute("SELECT COUNT(*) FROM removal_marker").fetchone() == (0,)  # nothing left behind
    assert sqlite_repo.get(kept.event_id) == kept


def test_sqlite_erasures_are_append_only(sqlite_repo: SqliteEventRepository) -> None:
    sqlite_repo.erase_user("someone", key_name="ops", suppress=False, at=T0)
    conn = raw(sqlite_repo)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE erasures SET events_removed = 5")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM erasures")
    assert len(sqlite_repo.erasures()) == 1


def test_sqlite_marker_outside_the_removing_transaction_lets_nothing_through(
    sqlite_repo: SqliteEventRepository,
) -> None:
    """Another connection cannot see a marker that an uncommitted removal holds; it waits for the lock instead."""
    sqlite_repo.add([make_event(user_id="a")])
    remover = raw(sqlite_repo)
    remover.execute("BEGIN IMMEDIATE")
    remover.execute("INSERT INTO removal_marker (id, purpose) VALUES (1, 'erasure')")
    other = sqlite3.connect(sqlite_repo.path, isolation_level=None, timeout=0.1)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        other.execute("DELETE FROM events")
    remover.execute("ROLLBACK")
    with pytest.raises(sqlite3.IntegrityError, match="immutable"):
        other.execute("DELETE FROM events")


def test_sqlite_erased_values_are_gone_from_the_file_and_the_wal(sqlite_repo: SqliteEventRepository) -> None:
    events = [make_event(user_id=SECRET, metadata={"note": f"{SECRET}-{i}" * 4}) for i in range(50)]
    sqlite_repo.add([*events, make_event(user_id="bystander")])
    sqlite_repo.checkpoint("TRUNCATE")
    files = [sqlite_repo.path, sqlite_repo.path.with_name("events.db-wal")]
    assert any(SECRET.encode() in f.read_bytes() for f in files if f.exists())  # the probe finds it first

    assert sqlite_repo.erase_user(SECRET, key_name="ops", suppress=False, at=T0).events_removed == 50
    for f in files:
        if f.exists():
            assert SECRET.encode() not in f.read_bytes(), f"erased data still readable in {f.name}"
    assert [e.user_id for e in sqlite_repo.iter_events(EventQuery())] == ["bystander"]


def test_sqlite_retention_chunks_leave_the_guard_in_place(sqlite_repo: SqliteEventRepository) -> None:
    sqlite_repo.add([make_event(timestamp=T0 - timedelta(days=i)) for i in range(5)])
    assert sqlite_repo.remove_before(T0 - timedelta(days=1, seconds=-1), 2) == 2
    with pytest.raises(sqlite3.IntegrityError, match="immutable"):
        raw(sqlite_repo).execute("DELETE FROM events")


# -- PostgreSQL ---------------------------------------------------------------------------------


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_schema("removal") as url:
        yield url


@pytest.fixture
def pg_repo(pg_url: str) -> Iterator[PostgresEventRepository]:
    repo = PostgresEventRepository(pg_url, pool_max_size=3)
    yield repo
    repo.close()


def test_postgres_refuses_ad_hoc_delete_and_update_after_an_erasure(
    pg_repo: PostgresEventRepository, pg_url: str
) -> None:
    kept = make_event(user_id="kept")
    pg_repo.add([kept, make_event(user_id="gone")])
    assert pg_repo.erase_user("gone", key_name="ops", suppress=False, at=T0).events_removed == 1
    with psycopg.connect(pg_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="immutable"):
            conn.execute("DELETE FROM events WHERE user_id = 'kept'")
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="immutable"):
            conn.execute("UPDATE events SET action = 'x'")
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="immutable"):
            conn.execute("TRUNCATE events")
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="append-only"):
            conn.execute("DELETE FROM erasures")
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="append-only"):
            conn.execute("UPDATE erasures SET events_removed = 0")
        assert conn.execute("SELECT count(*) FROM removal_marker").fetchone() == (0,)
    assert pg_repo.get(kept.event_id) == kept


def test_postgres_only_the_functions_may_remove_even_for_a_role_that_inserts(pg_url: str) -> None:
    schema = pg_url.rsplit("%3D", 1)[1]
    role = f"ingest_{uuid.uuid4().hex[:12]}"
    PostgresEventRepository(pg_url, pool_max_size=1).close()  # migrated by the owner
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        conn.execute(f'GRANT SELECT, INSERT ON events TO "{role}"')
        conn.execute(f'GRANT SELECT ON schema_version, erasures, suppressed_users TO "{role}"')
    role_url = pg_url.replace("postgres@", f"{role}@", 1)
    try:
        repo = PostgresEventRepository(role_url, pool_max_size=1)
        try:
            repo.add([make_event(user_id="gone"), make_event(user_id="gone"), make_event(user_id="kept")])
            assert repo.erase_user("gone", key_name="ops", suppress=True, at=T0).events_removed == 2
            assert [e.events_removed for e in repo.erasures()] == [2]
        finally:
            repo.close()
        with psycopg.connect(role_url, autocommit=True) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DELETE FROM events")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("INSERT INTO removal_marker VALUES (txid_current(), 'erasure')")
            assert conn.execute("SELECT user_id FROM events").fetchall() == [("kept",)]
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')


def test_postgres_the_digest_is_the_sha256_of_the_utf8_user_id(pg_repo: PostgresEventRepository) -> None:
    import hashlib

    pg_repo.add([make_event(user_id="ünïcødé 漢")])
    erasure = pg_repo.erase_user("ünïcødé 漢", key_name="ops", suppress=True, at=datetime(2026, 1, 1, tzinfo=UTC))
    expected = hashlib.sha256("ünïcødé 漢".encode()).hexdigest()
    assert erasure.user_id_sha256 == expected
    assert pg_repo.erasures()[0].user_id_sha256 == expected  # as the server computed it
    assert pg_repo.suppressed_users() == {expected}


def test_postgres_one_replica_at_a_time_holds_the_retention_lock(pg_url: str) -> None:
    first = PostgresEventRepository(pg_url, pool_max_size=2)
    second = PostgresEventRepository(pg_url, pool_max_size=2)
    try:
        with first.retention_lock() as held:
            assert held is True
            with second.retention_lock() as also:
                assert also is False  # another replica runs the pass
        with second.retention_lock() as now:
            assert now is True  # released when the first pass ended
    finally:
        first.close()
        second.close()
