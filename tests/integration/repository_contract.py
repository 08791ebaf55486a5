"""The EventRepository contract, written once and run against every backend.

Modelled on pyeventsourcing/eventsourcing's per-backend test cases: `RepositoryContract` holds the tests
and is not collected itself (its name does not start with Test); each backend subclasses it and provides
`make_repository`, a factory that opens a repository on one fresh store per test. Calling the factory
twice gives two repositories on the same store, as two replicas would have (the in-memory fake, which
has no store outside the process, gives the same instance back).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from app.models import UserActionEvent
from app.repository.events_repository import (
    AddStatus,
    EventFilter,
    EventQuery,
    EventRepository,
    StatsQuery,
)

RepositoryFactory = Callable[[], EventRepository]

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def make_event(**overrides: Any) -> UserActionEvent:
    fields: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "user_id": "user-1",
        "action": "click",
        "timestamp": T0,
        "source": "web",
        "metadata": {"button": "buy"},
        "received_at": T0 + timedelta(seconds=1),
        "sent_at": None,
    }
    fields.update(overrides)
    return UserActionEvent(**fields)


def all_events(repo: EventRepository, f: EventFilter | None = None) -> list[UserActionEvent]:
    return list(repo.iter_events(EventQuery(filter=f or EventFilter())))


def assert_same_event(stored: UserActionEvent | None, expected: UserActionEvent) -> None:
    assert stored is not None
    assert stored.same_fact_as(expected)
    assert stored.received_at == expected.received_at
    assert list(stored.metadata) == list(expected.metadata)  # key order kept as written


class RepositoryContract:
    """Every backend passes these. Subclasses define the `make_repository` fixture."""

    @pytest.fixture
    def make_repository(self) -> RepositoryFactory:
        raise NotImplementedError

    @pytest.fixture
    def repo(self, make_repository: RepositoryFactory) -> EventRepository:
        return make_repository()

    # -- add ------------------------------------------------------------------------------------

    def test_new_events_are_accepted_in_order(self, repo: EventRepository) -> None:
        events = [make_event(user_id=f"user-{i}") for i in range(5)]
        results = repo.add(events)
        assert [r.status for r in results] == [AddStatus.ACCEPTED] * 5
        assert [r.event.event_id for r in results] == [e.event_id for e in events]

    def test_adding_nothing_returns_nothing(self, repo: EventRepository) -> None:
        assert repo.add([]) == []
        assert all_events(repo) == []

    def test_an_accepted_event_reads_back_unchanged(self, repo: EventRepository) -> None:
        event = make_event(
            timestamp=datetime(2026, 3, 1, 14, 30, 5, 123456, tzinfo=timezone(timedelta(hours=2))),
            sent_at=datetime(2026, 3, 1, 12, 30, 5, 654321, tzinfo=UTC),
            metadata={"z": 1, "a": {"nested": [1, 2.5, None, True, "é 漢 🎉"]}, "m": {}, "empty": []},
        )
        repo.add([event])
        stored = repo.get(event.event_id)
        assert_same_event(stored, event)
        assert stored is not None
        assert stored.timestamp == datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=UTC)
        assert stored.timestamp.utcoffset() == timedelta(0)
        assert dict(stored.metadata) == {
            "z": 1,
            "a": {"nested": [1, 2.5, None, True, "é 漢 🎉"]},
            "m": {},
            "empty": [],
        }

    def test_metadata_keeps_key_order_and_number_spelling(self, repo: EventRepository) -> None:
        metadata = {"zeta": 1.0, "alpha": 10, "mid": -0.5, "b": 1e-7, "aa": "x"}
        event = make_event(metadata=metadata)
        repo.add([event])
        stored = repo.get(event.event_id)
        assert stored is not None
        assert list(stored.metadata.items()) == list(metadata.items())
        assert [type(v) for v in stored.metadata.values()] == [float, int, float, float, str]

    def test_unknown_event_id_reads_as_none(self, repo: EventRepository) -> None:
        repo.add([make_event()])
        assert repo.get(uuid.uuid4()) is None

    def test_same_event_again_is_a_duplicate_stored_once(self, repo: EventRepository) -> None:
        event = make_event()
        repo.add([event])
        again = replace(event, received_at=event.received_at + timedelta(minutes=5))
        [result] = repo.add([again])
        assert result.status is AddStatus.DUPLICATE
        assert result.event.received_at == event.received_at  # the first arrival is what is stored
        assert [e.event_id for e in all_events(repo)] == [event.event_id]

    def test_same_metadata_in_another_key_order_is_a_duplicate(self, repo: EventRepository) -> None:
        event = make_event(metadata={"a": 1, "b": {"c": 2, "d": 3}})
        repo.add([event])
        [result] = repo.add([replace(event, metadata={"b": {"d": 3, "c": 2}, "a": 1})])
        assert result.status is AddStatus.DUPLICATE

    def test_same_event_id_with_another_payload_is_a_conflict(self, repo: EventRepository) -> None:
        event = make_event()
        repo.add([event])
        other = replace(event, action="purchase", metadata={"button": "sell"})
        [result] = repo.add([other])
        assert result.status is AddStatus.CONFLICT
        assert set(result.conflicting_fields) == {"action", "metadata"}
        assert_same_event(repo.get(event.event_id), event)

    def test_repeats_inside_one_batch_are_classified_against_the_first(self, repo: EventRepository) -> None:
        event = make_event()
        results = repo.add([event, event, replace(event, user_id="someone-else")])
        assert [r.status for r in results] == [AddStatus.ACCEPTED, AddStatus.DUPLICATE, AddStatus.CONFLICT]
        assert results[2].conflicting_fields == ("user_id",)
        assert len(all_events(repo)) == 1

    def test_a_batch_mixing_new_duplicate_and_conflict(self, repo: EventRepository) -> None:
        old = make_event()
        repo.add([old])
        new = make_event()
        results = repo.add([new, old, replace(old, source="ios")])
        assert [r.status for r in results] == [AddStatus.ACCEPTED, AddStatus.DUPLICATE, AddStatus.CONFLICT]
        assert {e.event_id for e in all_events(repo)} == {old.event_id, new.event_id}

    def test_a_second_repository_on_the_same_store_sees_the_first_ones_events(
        self, make_repository: RepositoryFactory
    ) -> None:
        first, second = make_repository(), make_repository()
        event = make_event()
        first.add([event])
        assert_same_event(second.get(event.event_id), event)
        [again] = second.add([event])
        assert again.status is AddStatus.DUPLICATE
        [clash] = second.add([replace(event, user_id="other")])
        assert clash.status is AddStatus.CONFLICT

    def test_concurrent_writers_store_each_event_once(self, make_repository: RepositoryFactory) -> None:
        events = [make_event(user_id=f"user-{i}") for i in range(200)]
        writers = [make_repository() for _ in range(4)]
        results: list[list[Any]] = [[] for _ in writers]
        start = threading.Barrier(len(writers))

        def write(n: int) -> None:
            start.wait()
            # Every writer sends every event, in its own order and batch size: all race for each id.
            ordered = events if n % 2 == 0 else list(reversed(events))
            size = 10 + n * 7
            for i in range(0, len(ordered), size):
                results[n].extend(writers[n].add(ordered[i : i + size]))

        threads = [threading.Thread(target=write, args=(n,)) for n in range(len(writers))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        accepted = [r.event.event_id for rs in results for r in rs if r.status is AddStatus.ACCEPTED]
        duplicates = [r for rs in results for r in rs if r.status is AddStatus.DUPLICATE]
        assert sorted(accepted) == sorted(e.event_id for e in events)
        assert len(duplicates) == len(events) * (len(writers) - 1)
        assert len(all_events(writers[0])) == len(events)

    # -- query ----------------------------------------------------------------------------------

    def test_query_orders_by_timestamp_then_event_id(self, repo: EventRepository) -> None:
        same_time = [make_event(timestamp=T0) for _ in range(5)]
        earlier = make_event(timestamp=T0 - timedelta(microseconds=1))
        later = make_event(timestamp=T0 + timedelta(microseconds=1))
        repo.add([later, *same_time, earlier])
        page = repo.query(EventQuery(limit=100))
        expected = [earlier, *sorted(same_time, key=lambda e: str(e.event_id)), later]
        assert [e.event_id for e in page.items] == [e.event_id for e in expected]
        assert page.next_cursor is None

    def test_pages_walk_every_event_once(self, repo: EventRepository) -> None:
        events = [make_event(timestamp=T0 + timedelta(seconds=i // 3)) for i in range(10)]
        repo.add(events)
        seen: list[uuid.UUID] = []
        q = EventQuery(limit=3)
        pages = 0
        while True:
            page = repo.query(q)
            pages += 1
            seen.extend(e.event_id for e in page.items)
            if page.next_cursor is None:
                break
            q = replace(q, after=page.next_cursor)
        assert pages == 4
        assert sorted(seen) == sorted(e.event_id for e in events)
        assert len(seen) == len(set(seen))

    def test_an_exactly_full_last_page_has_no_cursor(self, repo: EventRepository) -> None:
        repo.add([make_event(timestamp=T0 + timedelta(seconds=i)) for i in range(4)])
        first = repo.query(EventQuery(limit=2))
        assert first.next_cursor is not None
        second = repo.query(EventQuery(limit=2, after=first.next_cursor))
        assert len(second.items) == 2
        assert second.next_cursor is None

    def test_filters_select_by_user_action_source_and_time(self, repo: EventRepository) -> None:
        a = make_event(user_id="ann", action="view", source="web", timestamp=T0)
        b = make_event(user_id="ann", action="click", source="ios", timestamp=T0 + timedelta(hours=1))
        c = make_event(user_id="bob", action="click", source="web", timestamp=T0 + timedelta(hours=2))
        repo.add([a, b, c])

        def ids(**kw: Any) -> set[uuid.UUID]:
            return {e.event_id for e in repo.query(EventQuery(filter=EventFilter(**kw))).items}

        assert ids(user_id="ann") == {a.event_id, b.event_id}
        assert ids(action="click") == {b.event_id, c.event_id}
        assert ids(source="web") == {a.event_id, c.event_id}
        assert ids(user_id="ann", action="click") == {b.event_id}
        assert ids(since=T0 + timedelta(hours=1)) == {b.event_id, c.event_id}  # since is inclusive
        assert ids(until=T0 + timedelta(hours=1)) == {a.event_id}  # until is exclusive
        assert ids(user_id="nobody") == set()

    def test_filtered_pages_follow_the_filter(self, repo: EventRepository) -> None:
        mine = [make_event(user_id="me", timestamp=T0 + timedelta(seconds=i)) for i in range(5)]
        others = [make_event(user_id="you", timestamp=T0 + timedelta(seconds=i)) for i in range(5)]
        repo.add(mine + others)
        q = EventQuery(filter=EventFilter(user_id="me"), limit=2)
        seen: list[UserActionEvent] = []
        while True:
            page = repo.query(q)
            seen.extend(page.items)
            if page.next_cursor is None:
                break
            q = replace(q, after=page.next_cursor)
        assert [e.event_id for e in seen] == [e.event_id for e in mine]

    def test_iter_events_yields_all_matching_in_order(self, repo: EventRepository) -> None:
        events = [
            make_event(timestamp=T0 + timedelta(seconds=i), action="a" if i % 2 else "b") for i in range(25)
        ]
        repo.add(list(reversed(events)))
        got = list(repo.iter_events(EventQuery(filter=EventFilter(action="a"), limit=4)))
        assert [e.event_id for e in got] == [e.event_id for e in events if e.action == "a"]
        for stored, original in zip(got, [e for e in events if e.action == "a"], strict=True):
            assert_same_event(stored, original)

    def test_iter_events_starts_after_the_cursor(self, repo: EventRepository) -> None:
        events = [make_event(timestamp=T0 + timedelta(seconds=i)) for i in range(6)]
        repo.add(events)
        cursor = repo.query(EventQuery(limit=2)).next_cursor
        assert cursor is not None
        got = list(repo.iter_events(EventQuery(after=cursor)))
        assert [e.event_id for e in got] == [e.event_id for e in events[2:]]

    # -- stats ----------------------------------------------------------------------------------

    def test_stats_of_an_empty_store_are_zero(self, repo: EventRepository) -> None:
        stats = repo.stats(StatsQuery())
        assert (stats.total, stats.by_action, stats.by_source, stats.by_bucket) == (0, {}, {}, [])

    def test_stats_count_by_action_source_and_hour(self, repo: EventRepository) -> None:
        repo.add(
            [
                make_event(action="view", source="web", timestamp=T0 + timedelta(minutes=5)),
                make_event(action="view", source="ios", timestamp=T0 + timedelta(minutes=59, seconds=59)),
                make_event(action="click", source="web", timestamp=T0 + timedelta(hours=1)),
                make_event(action="view", source="web", timestamp=T0 + timedelta(hours=26)),
            ]
        )
        stats = repo.stats(StatsQuery(bucket="hour"))
        assert stats.total == 4
        assert stats.by_action == {"view": 3, "click": 1}
        assert stats.by_source == {"web": 3, "ios": 1}
        assert stats.by_bucket == [(T0, 2), (T0 + timedelta(hours=1), 1), (T0 + timedelta(hours=26), 1)]
        assert all(start.utcoffset() == timedelta(0) for start, _ in stats.by_bucket)

    def test_stats_by_day_and_filtered(self, repo: EventRepository) -> None:
        midnight = T0.replace(hour=0)
        repo.add(
            [
                make_event(user_id="ann", timestamp=midnight + timedelta(hours=23, minutes=59)),
                make_event(user_id="ann", timestamp=midnight + timedelta(days=1)),
                make_event(user_id="bob", timestamp=midnight + timedelta(days=1, hours=3)),
            ]
        )
        daily = repo.stats(StatsQuery(bucket="day"))
        assert daily.by_bucket == [(midnight, 1), (midnight + timedelta(days=1), 2)]
        anns = repo.stats(StatsQuery(filter=EventFilter(user_id="ann"), bucket="day"))
        assert anns.total == 2
        assert anns.by_bucket == [(midnight, 1), (midnight + timedelta(days=1), 1)]
        since = repo.stats(StatsQuery(filter=EventFilter(since=midnight + timedelta(days=1))))
        assert since.total == 2

    # -- health ---------------------------------------------------------------------------------

    def test_a_fresh_store_is_writable(self, repo: EventRepository) -> None:
        repo.check_writable()
