"""One contract, every backend: subclass RepositoryContract and provide `repository` (the eventsourcing way)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from app.models import UserActionEvent
from app.repository.events_repository import (
    AddStatus,
    EventFilter,
    EventQuery,
    EventRepository,
    StatsQuery,
)

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def make_event(**overrides: object) -> UserActionEvent:
    values: dict[str, object] = {
        "event_id": uuid4(),
        "user_id": "u1",
        "action": "click",
        "timestamp": T0,
        "source": "web",
        "metadata": {"page": "/", "n": 1, "nested": {"list": [1, 2.5, "x", None, True]}},
        "received_at": T0 + timedelta(seconds=1),
    }
    values.update(overrides)
    return UserActionEvent(**values)  # type: ignore[arg-type]


class RepositoryContract:
    """Behaviour every EventRepository must show. Subclasses define a `repository` fixture."""

    def test_added_event_reads_back_identical(self, repository: EventRepository) -> None:
        event = make_event(sent_at=T0 + timedelta(milliseconds=500), metadata={"unicode": "ação ✓", "big": 2**70})
        assert repository.add([event])[0].status is AddStatus.ACCEPTED
        assert repository.get(event.event_id) == event

    def test_unknown_id_reads_none(self, repository: EventRepository) -> None:
        assert repository.get(uuid4()) is None

    def test_same_id_same_fact_is_duplicate_and_stored_once(self, repository: EventRepository) -> None:
        event = make_event()
        repository.add([event])
        retry = make_event(event_id=event.event_id, received_at=T0 + timedelta(hours=1))
        (result,) = repository.add([retry])
        assert result.status is AddStatus.DUPLICATE
        assert result.event.received_at == event.received_at  # as first stored
        assert len(repository.query(EventQuery(limit=10)).items) == 1

    def test_same_id_other_fact_is_conflict_naming_fields(self, repository: EventRepository) -> None:
        event = make_event()
        repository.add([event])
        (result,) = repository.add([make_event(event_id=event.event_id, action="buy", metadata={})])
        assert result.status is AddStatus.CONFLICT
        assert set(result.conflicting_fields) == {"action", "metadata"}
        assert repository.get(event.event_id) == event

    def test_duplicate_inside_one_add_is_detected(self, repository: EventRepository) -> None:
        event = make_event()
        results = repository.add([event, event])
        assert [r.status for r in results] == [AddStatus.ACCEPTED, AddStatus.DUPLICATE]

    def test_query_filters_and_orders_by_timestamp_then_id(self, repository: EventRepository) -> None:
        events = [
            make_event(user_id=f"u{i % 2}", action="a" if i < 3 else "b", timestamp=T0 + timedelta(minutes=i))
            for i in range(6)
        ]
        repository.add(list(reversed(events)))
        everything = repository.query(EventQuery(limit=100)).items
        assert everything == events
        f = EventFilter(user_id="u0", action="a")
        assert repository.query(EventQuery(f)).items == [events[0], events[2]]
        window = EventFilter(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3))
        assert repository.query(EventQuery(window)).items == events[1:3]

    def test_keyset_pages_have_no_gaps_or_repeats_while_events_arrive(self, repository: EventRepository) -> None:
        same_moment = [make_event(timestamp=T0) for _ in range(7)]  # ties broken by event_id
        spread = [make_event(timestamp=T0 + timedelta(seconds=i)) for i in range(1, 14)]
        repository.add(same_moment + spread)
        expected = sorted(same_moment + spread, key=lambda e: (e.timestamp, str(e.event_id)))
        seen: list[UserActionEvent] = []
        page = repository.query(EventQuery(limit=4))
        arrivals = 0
        while True:
            seen.extend(page.items)
            repository.add([make_event(timestamp=T0 + timedelta(days=1, seconds=arrivals))])  # new, later events
            arrivals += 1
            if page.next_cursor is None:
                break
            page = repository.query(EventQuery(limit=4, after=page.next_cursor))
        ids = [e.event_id for e in seen]
        assert len(ids) == len(set(ids))
        assert seen[: len(expected)] == expected

    def test_last_page_has_no_cursor(self, repository: EventRepository) -> None:
        repository.add([make_event(timestamp=T0 + timedelta(seconds=i)) for i in range(4)])
        assert repository.query(EventQuery(limit=4)).next_cursor is None
        assert repository.query(EventQuery(limit=3)).next_cursor is not None

    def test_iter_events_yields_every_match_once(self, repository: EventRepository) -> None:
        events = [make_event(timestamp=T0 + timedelta(seconds=i)) for i in range(2500)]
        repository.add(events)
        streamed = list(repository.iter_events(EventQuery(limit=100)))
        assert [e.event_id for e in streamed] == [e.event_id for e in events]

    def test_stats_group_by_action_source_and_bucket(self, repository: EventRepository) -> None:
        repository.add(
            [
                make_event(action="view", source="web", timestamp=T0),
                make_event(action="view", source="ios", timestamp=T0 + timedelta(minutes=30)),
                make_event(action="buy", source="web", timestamp=T0 + timedelta(hours=1, minutes=5)),
                make_event(action="buy", source="web", timestamp=T0 + timedelta(days=1)),
            ]
        )
        hourly = repository.stats(StatsQuery(EventFilter(until=T0 + timedelta(hours=2))))
        assert hourly.total == 3
        assert hourly.by_action == {"view": 2, "buy": 1}
        assert hourly.by_source == {"web": 2, "ios": 1}
        assert hourly.by_bucket == [(T0, 2), (T0 + timedelta(hours=1), 1)]
        daily = repository.stats(StatsQuery(bucket="day"))
        day = T0.replace(hour=0)
        assert daily.by_bucket == [(day, 3), (day + timedelta(days=1), 1)]

    def test_concurrent_adds_from_threads_lose_nothing(self, repository: EventRepository) -> None:
        batches = [[make_event(timestamp=T0 + timedelta(seconds=i)) for i in range(50)] for _ in range(4)]
        threads = [threading.Thread(target=repository.add, args=(batch,)) for batch in batches]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(1 for _ in repository.iter_events(EventQuery())) == 200

    def test_check_writable_passes_on_a_healthy_store(self, repository: EventRepository) -> None:
        repository.check_writable()
