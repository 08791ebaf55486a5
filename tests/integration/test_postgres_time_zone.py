"""The PostgreSQL adapter sets its own session time zone: a database default other than UTC changes nothing.

With `ALTER DATABASE ... SET timezone 'Europe/Berlin'`, an instant stored at 9999-12-31T23:30Z comes back
from a Berlin session as year 10000, which no Python datetime can hold: every read of it failed. The test
works on a database it creates and drops itself (never on `test`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest

from app.models import UserActionEvent
from app.repository.port import AddStatus, EventQuery, StatsQuery
from app.repository.postgres import PostgresEventRepository
from tests.support.postgres import ADMIN_URL, require_server


@pytest.fixture
def berlin_database() -> Iterator[str]:
    require_server()
    name = f"tz_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        conn.execute(f"ALTER DATABASE \"{name}\" SET timezone TO 'Europe/Berlin'")
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_instants_at_the_end_of_time_read_back_whatever_the_database_time_zone(berlin_database: str) -> None:
    last = datetime(9999, 12, 31, 23, 30, tzinfo=UTC)
    event = UserActionEvent(
        event_id=uuid.uuid4(),
        user_id="u",
        action="a",
        source="s",
        timestamp=last,
        received_at=last,
        sent_at=last,
        metadata={},
    )
    repo = PostgresEventRepository(berlin_database)
    try:
        assert repo.add([event])[0].status is AddStatus.ACCEPTED
        assert repo.get(event.event_id) == event
        assert repo.query(EventQuery()).items == [event]
        assert list(repo.iter_events(EventQuery())) == [event]
        stats = repo.stats(StatsQuery(bucket="day"))
        assert stats.by_bucket == [(datetime(9999, 12, 31, tzinfo=UTC), 1)]
        with repo.pool.connection() as conn:
            assert conn.execute("SHOW TimeZone").fetchone() == ("UTC",)
    finally:
        repo.close()
    with psycopg.connect(berlin_database) as conn:
        # The database's own default is untouched: only our sessions say UTC.
        assert conn.execute("SHOW TimeZone").fetchone() == ("Europe/Berlin",)
