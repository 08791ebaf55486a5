"""PostgreSQL schema, migrations and outage handling, against the real server (a fresh schema per test)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from app.models import UserActionEvent
from app.repository.port import AddStatus, EventFilter, EventQuery, StatsQuery
from app.repository.postgres import MIGRATIONS, SCHEMA_VERSION, DatabaseUnavailable, PostgresEventRepository, migrate
from tests.support.postgres import fresh_schema, url_with_schema
from tests.support.tcp_proxy import TcpProxy


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_schema("schema") as schema_url:
        yield schema_url


@pytest.fixture
def repo(url: str) -> Iterator[PostgresEventRepository]:
    repository = PostgresEventRepository(url, pool_max_size=2)
    yield repository
    repository.close()


def make_event(**overrides: Any) -> UserActionEvent:
    fields: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "user_id": "u",
        "action": "click",
        "timestamp": datetime(2026, 3, 1, tzinfo=UTC),
        "source": "web",
        "metadata": {"k": "v"},
    }
    fields.update(overrides)
    return UserActionEvent(**fields)


def test_migration_records_its_version_once(url: str) -> None:
    with psycopg.connect(url) as conn:
        assert migrate(conn) == SCHEMA_VERSION == len(MIGRATIONS)
        assert migrate(conn) == SCHEMA_VERSION
        versions = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]


def test_replicas_migrating_at_once_apply_each_version_once(url: str) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def start_replica() -> None:
        try:
            with psycopg.connect(url) as conn:
                start.wait()
                migrate(conn)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start_replica) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    with psycopg.connect(url) as conn:
        versions = conn.execute("SELECT version FROM schema_version").fetchall()
    assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]


def test_a_database_newer_than_the_service_is_refused(url: str) -> None:
    with psycopg.connect(url) as conn:
        migrate(conn)
        conn.execute("INSERT INTO schema_version VALUES (%s, now())", (SCHEMA_VERSION + 1,))
        conn.commit()
        with pytest.raises(RuntimeError, match="newer than this service"):
            migrate(conn)


def test_columns_have_the_types_the_query_api_relies_on(url: str) -> None:
    with psycopg.connect(url) as conn:
        migrate(conn)
        types = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = 'events'"
            ).fetchall()
        )
        primary_key = conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a"
            " ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
            " WHERE i.indrelid = 'events'::regclass AND i.indisprimary"
        ).fetchall()
    assert types["event_id"] == "uuid"
    assert types["timestamp"] == types["received_at"] == types["sent_at"] == "timestamp with time zone"
    assert types["metadata"] == "jsonb"
    assert primary_key == [("event_id",)]


@pytest.mark.parametrize(
    ("sql", "index"),
    [
        ('SELECT * FROM events ORDER BY "timestamp", event_id LIMIT 10', "events_timestamp"),
        ('SELECT * FROM events ORDER BY "timestamp" DESC, event_id DESC LIMIT 10', "events_timestamp"),
        ("SELECT * FROM events WHERE user_id = 'u' ORDER BY timestamp DESC, event_id DESC", "events_user_timestamp"),
        ("SELECT * FROM events WHERE user_id = 'u' ORDER BY timestamp, event_id", "events_user_timestamp"),
        ("SELECT count(*) FROM events WHERE action = 'x' AND timestamp >= now()", "events_action_timestamp"),
        ("SELECT metadata FROM events WHERE seq IN (1, 1001, 2001)", "events_seq"),
    ],
)
def test_indexes_serve_the_query_api(url: str, sql: str, index: str) -> None:
    with psycopg.connect(url) as conn:
        migrate(conn)
        conn.execute("SET enable_seqscan = off")  # an empty table would otherwise be scanned whole
        plan = "\n".join(row[0] for row in conn.execute(f"EXPLAIN {sql}").fetchall())
    assert index in plan


@pytest.mark.parametrize("sql", ["UPDATE events SET action = 'x'", "DELETE FROM events", "TRUNCATE events"])
def test_the_database_refuses_to_change_or_remove_events(repo: PostgresEventRepository, url: str, sql: str) -> None:
    event = make_event()
    repo.add([event])
    refused = pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="immutable")
    with psycopg.connect(url) as conn, refused:
        conn.execute(sql)
    assert repo.get(event.event_id) == event


def test_metadata_is_queryable_as_jsonb(repo: PostgresEventRepository, url: str) -> None:
    repo.add([make_event(metadata={"plan": "pro", "items": [1, 2]}), make_event(metadata={"plan": "free"})])
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT metadata->>'plan', jsonb_array_length(metadata->'items') FROM events"
            ' WHERE metadata @> \'{"plan": "pro"}\''
        ).fetchall()
    assert rows == [("pro", 2)]


def test_metadata_holding_nul_is_kept_exactly(repo: PostgresEventRepository, url: str) -> None:
    # jsonb cannot hold U+0000; the record (metadata_text) keeps it, the queryable copy shows U+FFFD.
    event = make_event(metadata={"note": "a\x00b", "k\x00": 1})
    [result] = repo.add([event])
    assert result.status is AddStatus.ACCEPTED
    stored = repo.get(event.event_id)
    assert stored is not None
    assert dict(stored.metadata) == {"note": "a\x00b", "k\x00": 1}
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT metadata->>'note' FROM events").fetchone()
    assert row == ("a\ufffdb",)


def test_an_unreachable_database_fails_fast_then_recovers(url: str) -> None:
    schema = url.rsplit("%3D", 1)[1]
    proxy = TcpProxy("127.0.0.1", 5432).start()
    repo = PostgresEventRepository(
        url_with_schema(schema, f"postgresql://postgres@127.0.0.1:{proxy.port}/test"), acquire_timeout_s=1.0
    )
    try:
        assert repo.add([make_event()])[0].status is AddStatus.ACCEPTED
        proxy.cut()
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable):
            repo.add([make_event()])
        with pytest.raises(DatabaseUnavailable):
            repo.check_writable()
        assert time.monotonic() - started < 10
        proxy.restore()
        deadline = time.monotonic() + 30
        while True:
            try:
                event = make_event()
                assert repo.add([event])[0].status is AddStatus.ACCEPTED
                break
            except DatabaseUnavailable:
                assert time.monotonic() < deadline, "no recovery within 30 s of the database returning"
                time.sleep(0.2)
        assert repo.get(event.event_id) == event
    finally:
        repo.close()
        proxy.stop()


def test_start_up_waits_for_the_database_then_gives_up_clearly() -> None:
    proxy = TcpProxy("127.0.0.1", 5432).start()
    port = proxy.port
    proxy.cut()  # the port is known and nothing answers on it
    with pytest.raises(DatabaseUnavailable, match="start-up"):
        PostgresEventRepository(f"postgresql://postgres@127.0.0.1:{port}/test", startup_timeout_s=1.0)


def test_a_filter_holding_nul_matches_nothing_instead_of_failing(repo: PostgresEventRepository) -> None:
    repo.add([make_event(user_id="u")])
    nul_filter = EventFilter(user_id="u\x00", action="click")
    assert repo.query(EventQuery(nul_filter)).items == []
    assert repo.stats(StatsQuery(nul_filter)).total == 0


def test_a_role_with_only_select_and_insert_can_run_the_service_once_migrated(url: str) -> None:
    schema = url.rsplit("%3D", 1)[1]
    role = f"ingest_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        conn.execute(f'GRANT SELECT, INSERT ON events TO "{role}"')
        conn.execute(f'GRANT SELECT ON schema_version TO "{role}"')
    try:
        repo = PostgresEventRepository(url.replace("postgres@", f"{role}@", 1))
        try:
            repo.check_writable()
            event = make_event()
            assert repo.add([event])[0].status is AddStatus.ACCEPTED
            assert repo.get(event.event_id) == event
        finally:
            repo.close()
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')


def test_a_read_only_database_is_not_ready(url: str) -> None:
    with psycopg.connect(url) as conn:
        migrate(conn)
    read_only = url + "%20-cdefault_transaction_read_only%3Don"  # appended to the options parameter
    repo = PostgresEventRepository(read_only, startup_timeout_s=1.0)
    try:
        with pytest.raises(DatabaseUnavailable, match="read-only"):
            repo.check_writable()
    finally:
        repo.close()


def test_the_session_time_zone_changes_nothing(url: str) -> None:
    """Buckets are UTC hours and days, and reads come back in UTC, whatever the server's TimeZone."""
    far_east = url + "%20-cTimeZone%3DAsia/Kolkata"  # UTC+05:30: local hours and days start elsewhere
    repo = PostgresEventRepository(far_east)
    try:
        moment = datetime(2026, 3, 1, 23, 45, tzinfo=UTC)
        event = make_event(timestamp=moment)
        repo.add([event])
        stored = repo.get(event.event_id)
        assert stored is not None
        assert stored.timestamp == moment
        assert stored.timestamp.tzinfo is UTC
        assert repo.stats(StatsQuery(bucket="hour")).by_bucket == [(moment.replace(minute=0), 1)]
        assert repo.stats(StatsQuery(bucket="day")).by_bucket == [(moment.replace(hour=0, minute=0), 1)]
    finally:
        repo.close()
