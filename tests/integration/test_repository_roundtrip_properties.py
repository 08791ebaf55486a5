"""Property: any valid event stored in SQLite reads back unchanged, field for field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.models import UserActionEvent
from app.repository.port import AddStatus
from app.repository.sqlite import SqliteEventRepository
from app.services.event_limits import EventLimits, check_event
from tests.support.event_strategies import NAME_TEXT, metadata, sent_after, utc_moments


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqliteEventRepository]:
    repo = SqliteEventRepository(tmp_path_factory.mktemp("roundtrip") / "events.db")
    yield repo
    repo.close()


@st.composite
def events(draw: st.DrawFn) -> UserActionEvent:
    timestamp = draw(utc_moments)
    return UserActionEvent(
        event_id=uuid4(),  # fresh each time: hypothesis replays its draws, a stored id would be a duplicate
        user_id=draw(st.text(NAME_TEXT, min_size=1, max_size=256)),
        action=draw(st.text(NAME_TEXT, min_size=1, max_size=128)),
        source=draw(st.text(NAME_TEXT, min_size=1, max_size=128)),
        timestamp=timestamp,
        metadata=draw(metadata),
        received_at=datetime.now(UTC),
        sent_at=draw(st.none() | sent_after(timestamp)),
    )


def plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=dict))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=events())
def test_any_valid_event_reads_back_unchanged_from_sqlite(
    repository: SqliteEventRepository, event: UserActionEvent
) -> None:
    check_event(event, EventLimits())  # the strategy makes only events the service accepts
    (result,) = repository.add([event])
    assert result.status is AddStatus.ACCEPTED
    stored = repository.get(event.event_id)
    assert stored is not None
    assert stored == event
    assert stored.same_fact_as(event)
    assert plain(stored.metadata) == plain(event.metadata)
    assert [type(v) for v in stored.metadata.values()] == [type(v) for v in event.metadata.values()]
