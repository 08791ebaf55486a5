"""Property: any valid event stored in PostgreSQL reads back unchanged, field for field, as from SQLite
(tests/integration/test_repository_roundtrip_properties.py: same strategy, same assertions)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings

from app.models import UserActionEvent
from app.repository.port import AddStatus
from app.repository.postgres import PostgresEventRepository
from app.services.event_limits import EventLimits, check_event
from tests.integration.test_repository_roundtrip_properties import events, plain
from tests.support.postgres import POOL_DRAWS_RANDOM, fresh_schema

pytestmark = POOL_DRAWS_RANDOM


@pytest.fixture(scope="module")
def repository() -> Iterator[PostgresEventRepository]:
    with fresh_schema("roundtrip") as url:
        repo = PostgresEventRepository(url, pool_max_size=2)
        yield repo
        repo.close()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=events())
def test_any_valid_event_reads_back_unchanged_from_postgresql(
    repository: PostgresEventRepository, event: UserActionEvent
) -> None:
    check_event(event, EventLimits())  # the strategy makes only events the service accepts
    (result,) = repository.add([event])
    assert result.status is AddStatus.ACCEPTED
    stored = repository.get(event.event_id)
    assert stored is not None
    assert stored == event
    assert stored.same_fact_as(event)
    assert plain(stored.metadata) == plain(event.metadata)
    assert list(stored.metadata) == list(event.metadata)  # key order as written
    assert [type(v) for v in stored.metadata.values()] == [type(v) for v in event.metadata.values()]
