"""One contract, every backend: the eventsourcing way (one abstract test case, subclassed per backend).

`RepositoryContract` holds the tests and is not collected itself (its name does not start with Test).
A backend's subclass provides `make_repository`: a factory opening a repository on one fresh store per
test. Calling it twice gives two repositories on the same store, as two replicas would have (the
in-memory fake, which has no store outside the process, gives the same instance back).
tests/integration/test_repository_backends.py holds the subclasses: in-memory, SQLite, PostgreSQL.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest

from app.json_codec import dump_json
from app.models import UserActionEvent
from app.repository.port import (
    AddResult,
    AddStatus,
    EventFilter,
    EventQuery,
    EventRepository,
    StatsQuery,
)
from app.utc_text import to_utc_text

RepositoryFactory = Callable[[], EventRepository]

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


def all_events(repository: EventRepository, f: EventFilter | None = None) -> list[UserActionEvent]:
    return list(repository.iter_events(EventQuery(filter=f or EventFilter())))


class RepositoryContract:
    """Behaviour every EventRepository must show. Subclasses define the `make_repository` fixture."""

    @pytest.fixture
    def make_repository(self) -> RepositoryFactory:
        raise NotImplementedError("each backend's subclass provides make_repository")

    @pytest.fixture
    def repository(self, make_repository: RepositoryFactory) -> EventRepository:
        return make_repository()

    # -- add ------------------------------------------------------------------------------------

    def test_new_events_are_accepted_in_order(self, repository: EventRepository) -> None:
        events = [make_event(user_id=f"user-{i}") for i in range(5)]
        results = repository.add(events)
        assert [r.status for r in results] == [AddStatus.ACCEPTED] * 5
        assert [r.event.event_id for r in results] == [e.event_id for e in events]

    def test_adding_nothing_returns_nothing(self, repository: EventRepository) -> None:
        assert repository.add([]) == []
        assert all_events(repository) == []

    def test_added_event_reads_back_identical(self, repository: EventRepository) -> None:
        event = make_event(
            sent_at=T0 + timedelta(milliseconds=500),
            metadata={"unicode": "ação ✓ 漢 🎉", "big": 2**70 + 1, "negative_big": -(2**64) - 3},
        )
        assert repository.add([event])[0].status is AddStatus.ACCEPTED
        assert repository.get(event.event_id) == event

    def test_timestamps_read_back_in_utc_to_the_microsecond(self, repository: EventRepository) -> None:
        event = make_event(
            timestamp=datetime(2026, 3, 1, 14, 30, 5, 123456, tzinfo=timezone(timedelta(hours=2))),
            sent_at=datetime(2026, 3, 1, 12, 30, 5, 654321, tzinfo=UTC),
        )
        repository.add([event])
        stored = repository.get(event.event_id)
        assert stored is not None
        assert stored.timestamp == datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=UTC)
        assert stored.timestamp.utcoffset() == timedelta(0)
        assert stored.sent_at == datetime(2026, 3, 1, 12, 30, 5, 654321, tzinfo=UTC)
        assert stored.received_at == event.received_at

    def test_metadata_keeps_key_order_and_number_types(self, repository: EventRepository) -> None:
        metadata = {"zeta": 1.0, "alpha": 10, "mid": -0.5, "b": 1e-7, "aa": "x", "empty": {}, "none": []}
        event = make_event(metadata=metadata)
        repository.add([event])
        stored = repository.get(event.event_id)
        assert stored is not None
        assert list(stored.metadata.items()) == list(metadata.items())
        assert [type(v) for v in stored.metadata.values()] == [float, int, float, float, str, dict, list]

    def test_unknown_id_reads_none(self, repository: EventRepository) -> None:
        repository.add([make_event()])
        assert repository.get(uuid4()) is None

    def test_same_id_same_fact_is_duplicate_and_stored_once(self, repository: EventRepository) -> None:
        event = make_event()
        repository.add([event])
        retry = make_event(event_id=event.event_id, received_at=T0 + timedelta(hours=1))
        (result,) = repository.add([retry])
        assert result.status is AddStatus.DUPLICATE
        assert result.event.received_at == event.received_at  # as first stored
        assert len(repository.query(EventQuery(limit=10)).items) == 1

    def test_same_metadata_in_another_key_order_is_a_duplicate(self, repository: EventRepository) -> None:
        event = make_event(metadata={"a": 1, "b": {"c": 2, "d": 3}})
        repository.add([event])
        (result,) = repository.add([replace(event, metadata={"b": {"d": 3, "c": 2}, "a": 1})])
        assert result.status is AddStatus.DUPLICATE

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

    def test_conflict_inside_one_add_is_detected_against_the_first(self, repository: EventRepository) -> None:
        event = make_event()
        results = repository.add([event, replace(event, user_id="someone-else")])
        assert [r.status for r in results] == [AddStatus.ACCEPTED, AddStatus.CONFLICT]
        assert results[1].conflicting_fields == ("user_id",)
        assert all_events(repository) == [event]

    def test_one_add_mixing_new_duplicate_and_conflict(self, repository: EventRepository) -> None:
        old = make_event()
        repository.add([old])
        new = make_event()
        results = repository.add([new, old, replace(old, source="ios")])
        assert [r.status for r in results] == [AddStatus.ACCEPTED, AddStatus.DUPLICATE, AddStatus.CONFLICT]
        assert {e.event_id for e in all_events(repository)} == {old.event_id, new.event_id}

    def test_a_second_repository_on_the_same_store_sees_the_first_ones_events(
        self, make_repository: RepositoryFactory
    ) -> None:
        first, second = make_repository(), make_repository()
        event = make_event()
        first.add([event])
        assert second.get(event.event_id) == event
        (again,) = second.add([event])
        assert again.status is AddStatus.DUPLICATE
        (clash,) = second.add([replace(event, user_id="other")])
        assert clash.status is AddStatus.CONFLICT

    def test_concurrent_adds_from_threads_lose_nothing(self, repository: EventRepository) -> None:
        batches = [[make_event(timestamp=T0 + timedelta(seconds=i)) for i in range(50)] for _ in range(4)]
        threads = [threading.Thread(target=repository.add, args=(batch,)) for batch in batches]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(1 for _ in repository.iter_events(EventQuery())) == 200

    def test_writers_racing_for_the_same_ids_store_each_once(self, make_repository: RepositoryFactory) -> None:
        events = [make_event(user_id=f"user-{i}") for i in range(200)]
        writers = [make_repository() for _ in range(4)]
        results: list[list[AddResult]] = [[] for _ in writers]
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

    def test_each_filter_selects_on_its_own(self, repository: EventRepository) -> None:
        a = make_event(user_id="ann", action="view", source="web", timestamp=T0)
        b = make_event(user_id="ann", action="click", source="ios", timestamp=T0 + timedelta(hours=1))
        c = make_event(user_id="bob", action="click", source="web", timestamp=T0 + timedelta(hours=2))
        repository.add([a, b, c])

        def ids(**kw: Any) -> set[UUID]:
            return {e.event_id for e in repository.query(EventQuery(filter=EventFilter(**kw))).items}

        assert ids(user_id="ann") == {a.event_id, b.event_id}
        assert ids(action="click") == {b.event_id, c.event_id}
        assert ids(source="web") == {a.event_id, c.event_id}
        assert ids(since=T0 + timedelta(hours=1)) == {b.event_id, c.event_id}  # since is inclusive
        assert ids(until=T0 + timedelta(hours=1)) == {a.event_id}  # until is exclusive
        assert ids(user_id="nobody") == set()

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

    def test_filtered_pages_follow_the_filter(self, repository: EventRepository) -> None:
        mine = [make_event(user_id="me", timestamp=T0 + timedelta(seconds=i)) for i in range(5)]
        others = [make_event(user_id="you", timestamp=T0 + timedelta(seconds=i)) for i in range(5)]
        repository.add(mine + others)
        q = EventQuery(filter=EventFilter(user_id="me"), limit=2)
        seen: list[UserActionEvent] = []
        while True:
            page = repository.query(q)
            seen.extend(page.items)
            if page.next_cursor is None:
                break
            q = replace(q, after=page.next_cursor)
        assert seen == mine

    def test_desc_pages_are_newest_first_with_no_gaps_or_repeats(self, repository: EventRepository) -> None:
        same_moment = [make_event(timestamp=T0) for _ in range(5)]  # ties broken by event_id, descending too
        spread = [make_event(timestamp=T0 + timedelta(seconds=i)) for i in range(1, 9)]
        repository.add(spread + same_moment)
        expected = sorted(same_moment + spread, key=lambda e: (e.timestamp, str(e.event_id)), reverse=True)
        seen: list[UserActionEvent] = []
        q = EventQuery(limit=3, order="desc")
        while True:
            page = repository.query(q)
            seen.extend(page.items)
            if page.next_cursor is None:
                break
            q = replace(q, after=page.next_cursor)
        assert seen == expected

    def test_one_cursor_pages_both_ways(self, repository: EventRepository) -> None:
        events = [make_event(user_id="me", timestamp=T0 + timedelta(seconds=i)) for i in range(10)]
        repository.add([*events, make_event(user_id="you", timestamp=T0 + timedelta(seconds=3, milliseconds=5))])
        mine = EventFilter(user_id="me")
        forward = repository.query(EventQuery(mine, limit=5))
        assert forward.items == events[:5]
        assert forward.next_cursor is not None
        back = repository.query(EventQuery(mine, limit=10, after=forward.next_cursor, order="desc"))
        assert back.items == list(reversed(events[:4]))  # before the cursor's event, newest first
        assert back.next_cursor is None
        newest = repository.query(EventQuery(mine, limit=2, order="desc"))
        assert newest.items == [events[9], events[8]]
        assert newest.next_cursor is not None
        onwards = repository.query(EventQuery(mine, limit=10, after=newest.next_cursor, order="asc"))
        assert onwards.items == [events[9]]  # after the cursor's event, oldest first

    def test_iter_events_follows_the_order(self, repository: EventRepository) -> None:
        events = [make_event(timestamp=T0 + timedelta(seconds=i)) for i in range(1200)]
        repository.add(events)
        streamed = list(repository.iter_events(EventQuery(limit=100, order="desc")))
        assert [e.event_id for e in streamed] == [e.event_id for e in reversed(events)]

    def test_last_page_has_no_cursor(self, repository: EventRepository) -> None:
        repository.add([make_event(timestamp=T0 + timedelta(seconds=i)) for i in range(4)])
        assert repository.query(EventQuery(limit=4)).next_cursor is None
        assert repository.query(EventQuery(limit=3)).next_cursor is not None

    def test_iter_events_yields_every_match_once(self, repository: EventRepository) -> None:
        events = [make_event(timestamp=T0 + timedelta(seconds=i)) for i in range(2500)]
        repository.add(events)
        streamed = list(repository.iter_events(EventQuery(limit=100)))
        assert [e.event_id for e in streamed] == [e.event_id for e in events]

    def test_iter_events_applies_the_filter_and_the_cursor(self, repository: EventRepository) -> None:
        events = [make_event(timestamp=T0 + timedelta(seconds=i), action="a" if i % 2 else "b") for i in range(12)]
        repository.add(list(reversed(events)))
        wanted = [e for e in events if e.action == "a"]
        assert all_events(repository, EventFilter(action="a")) == wanted
        cursor = repository.query(EventQuery(EventFilter(action="a"), limit=2)).next_cursor
        assert cursor is not None
        assert list(repository.iter_events(EventQuery(EventFilter(action="a"), after=cursor))) == wanted[2:]

    # -- stats ----------------------------------------------------------------------------------

    def test_stats_of_an_empty_store_are_zero(self, repository: EventRepository) -> None:
        stats = repository.stats(StatsQuery())
        assert (stats.total, stats.by_action, stats.by_source, stats.by_bucket) == (0, {}, {}, [])

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

    def test_stat_buckets_are_utc_hours_and_days_with_exact_edges(self, repository: EventRepository) -> None:
        midnight = T0.replace(hour=0)
        repository.add(
            [
                make_event(user_id="ann", timestamp=midnight - timedelta(microseconds=1)),
                make_event(user_id="ann", timestamp=midnight),
                make_event(user_id="bob", timestamp=midnight + timedelta(hours=1) - timedelta(microseconds=1)),
            ]
        )
        hourly = repository.stats(StatsQuery(bucket="hour"))
        assert hourly.by_bucket == [(midnight - timedelta(hours=1), 1), (midnight, 2)]
        assert all(start.utcoffset() == timedelta(0) for start, _ in hourly.by_bucket)
        anns = repository.stats(StatsQuery(EventFilter(user_id="ann"), bucket="day"))
        assert anns.by_bucket == [(midnight - timedelta(days=1), 1), (midnight, 1)]

    # -- health ---------------------------------------------------------------------------------

    def test_check_writable_passes_on_a_healthy_store(self, repository: EventRepository) -> None:
        repository.check_writable()

    # -- rows for export --------------------------------------------------------------------------

    def test_iter_rows_are_the_events_as_text_in_order_in_chunks(self, repository: EventRepository) -> None:
        events = [
            make_event(user_id=f"u{i % 3}", timestamp=T0 + timedelta(seconds=i), metadata={"i": i, "s": "é"})
            for i in range(7)
        ] + [make_event(sent_at=T0 + timedelta(microseconds=7), metadata={"big": 2**70})]
        repository.add(events)
        chunks = list(repository.iter_rows(EventFilter(), 3))
        assert [len(c) for c in chunks] == [3, 3, 2]
        expected = [
            (str(e.event_id), e.user_id, e.action, e.source, to_utc_text(e.timestamp), to_utc_text(e.received_at),
             to_utc_text(e.sent_at) if e.sent_at else None, dump_json(e.metadata))
            for e in all_events(repository)
        ]  # fmt: skip
        assert [tuple(r) for c in chunks for r in c] == expected
        only_u1 = [r for c in repository.iter_rows(EventFilter(user_id="u1"), 100) for r in c]
        assert {r[1] for r in only_u1} == {"u1"}
        assert len(only_u1) == 3  # i = 1, 4 and the last one

    # -- erasure ----------------------------------------------------------------------------------

    def test_erasure_removes_every_event_of_the_user_and_only_those(self, repository: EventRepository) -> None:
        mine = [make_event(user_id="erase-me", timestamp=T0 + timedelta(minutes=i)) for i in range(3)]
        others = [make_event(user_id="keep-me"), make_event(user_id="erase-me-not")]
        repository.add(mine + others)
        erasure = repository.erase_user("erase-me", key_name="ops", suppress=False, at=T0)
        assert erasure.events_removed == 3
        assert erasure.user_id_sha256 == hashlib.sha256(b"erase-me").hexdigest()
        assert {e.user_id for e in all_events(repository)} == {"keep-me", "erase-me-not"}
        assert all(repository.get(e.event_id) is None for e in mine)
        assert repository.stats(StatsQuery()).total == 2

    def test_a_second_erasure_removes_nothing_and_both_are_recorded(self, repository: EventRepository) -> None:
        repository.add([make_event(user_id="twice")])
        first = repository.erase_user("twice", key_name="ops", suppress=False, at=T0)
        second = repository.erase_user("twice", key_name="cli", suppress=True, at=T0 + timedelta(seconds=1))
        assert (first.events_removed, second.events_removed) == (1, 0)
        recorded = repository.erasures()
        assert recorded == [first, second]
        assert [(r.key_name, r.suppressed, r.erased_at) for r in recorded] == [
            ("ops", False, T0),
            ("cli", True, T0 + timedelta(seconds=1)),
        ]
        assert "twice" not in repr(recorded)  # the digest, never the id

    def test_suppressed_users_are_listed_by_digest(self, repository: EventRepository) -> None:
        assert repository.suppressed_users() == frozenset()
        repository.erase_user("quiet", key_name="ops", suppress=True, at=T0)
        repository.erase_user("loud", key_name="ops", suppress=False, at=T0)
        repository.erase_user("quiet", key_name="ops", suppress=True, at=T0)
        assert repository.suppressed_users() == {hashlib.sha256(b"quiet").hexdigest()}

    def test_an_erased_user_may_send_again_when_not_suppressed(self, repository: EventRepository) -> None:
        repository.add([make_event(user_id="back")])
        repository.erase_user("back", key_name="ops", suppress=False, at=T0)
        again = make_event(user_id="back")
        assert repository.add([again])[0].status is AddStatus.ACCEPTED
        assert all_events(repository) == [again]

    # -- retention --------------------------------------------------------------------------------

    def test_remove_before_takes_the_oldest_first_at_most_max_rows(self, repository: EventRepository) -> None:
        events = [make_event(timestamp=T0 + timedelta(hours=i)) for i in range(10)]
        repository.add(events)
        cutoff = T0 + timedelta(hours=6)  # events 0..5 are older
        assert repository.count_before(cutoff) == 6
        assert repository.oldest_timestamp() == T0
        assert repository.remove_before(cutoff, 4) == 4
        assert repository.oldest_timestamp() == T0 + timedelta(hours=4)
        assert repository.remove_before(cutoff, 4) == 2
        assert repository.remove_before(cutoff, 4) == 0
        assert [e.event_id for e in all_events(repository)] == [e.event_id for e in events[6:]]
        assert repository.count_before(cutoff) == 0

    def test_oldest_timestamp_of_an_empty_store_is_none(self, repository: EventRepository) -> None:
        assert repository.oldest_timestamp() is None
        assert repository.remove_before(T0, 10) == 0

    def test_retention_lock_is_granted_to_a_lone_pass(self, repository: EventRepository) -> None:
        with repository.retention_lock() as held:
            assert held is True
        with repository.retention_lock() as again:
            assert again is True  # released after the pass
