"""The simulator: exact, reproducible, valid events whose shape follows the documented model."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import pytest

from app.models import UserActionEvent
from app.simulation import ENGAGEMENT_ACTIONS, SimulationParams, in_batches, simulate

SMALL = SimulationParams(events=6_000, users=150, days=14, seed=3)


def _events(params: SimulationParams = SMALL) -> list[UserActionEvent]:
    return list(simulate(params))


def test_produces_exactly_the_requested_number_of_events() -> None:
    assert len(_events()) == SMALL.events


def test_same_params_give_the_same_events() -> None:
    first, second = _events(), _events()
    assert [(e.event_id, e.timestamp, dict(e.metadata)) for e in first] == [
        (e.event_id, e.timestamp, dict(e.metadata)) for e in second
    ]


def test_another_seed_gives_other_events() -> None:
    other = SimulationParams(events=SMALL.events, users=SMALL.users, days=SMALL.days, seed=4)
    assert {e.event_id for e in _events()}.isdisjoint({e.event_id for e in _events(other)})


def test_event_ids_are_unique_time_ordered_uuid7() -> None:
    events = _events()
    assert len({e.event_id for e in events}) == len(events)
    assert {e.event_id.version for e in events} == {7}
    first = events[0]
    assert first.event_id.int >> 80 == int(first.timestamp.timestamp() * 1000)


def test_events_stay_inside_the_window_and_arrive_after_they_happen() -> None:
    end = SMALL.start + timedelta(days=SMALL.days)
    for event in _events():
        assert SMALL.start <= event.timestamp < end
        assert event.received_at >= event.timestamp
        assert event.sent_at is None or event.timestamp <= event.sent_at <= event.received_at


def test_each_user_signs_up_once_before_anything_else() -> None:
    by_user: dict[str, list[UserActionEvent]] = defaultdict(list)
    for event in _events():
        by_user[event.user_id].append(event)
    assert len(by_user) == SMALL.users
    for events in by_user.values():
        signups = [e for e in events if e.action == "signup"]
        assert len({e.timestamp for e in signups}) == 1  # a retried signup repeats the same fact
        assert min(e.timestamp for e in events) == signups[0].timestamp


def test_purchases_follow_activation() -> None:
    activated: dict[str, object] = {}
    events = sorted(_events(), key=lambda e: e.timestamp)
    for event in events:
        if event.action == "activate":
            activated[event.user_id] = event.timestamp
        if event.action == "purchase":
            assert event.user_id in activated


def test_metadata_keys_depend_on_the_action() -> None:
    keys: dict[str, set[str]] = defaultdict(set)
    for event in _events():
        keys[event.action].update(event.metadata)
    assert {"amount", "currency", "plan"} <= keys["purchase"]
    assert {"page", "referrer", "duration_ms"} <= keys["page_view"]
    assert "amount" not in keys["page_view"]
    assert all({"session_id", "device"} <= k for k in keys.values())
    assert set(keys) == {*ENGAGEMENT_ACTIONS, "signup", "activate", "purchase"}


def test_sessions_group_consecutive_events_of_one_user() -> None:
    sessions: dict[str, set[str]] = defaultdict(set)
    for event in _events():
        sessions[str(event.metadata["session_id"])].add(event.user_id)
    assert all(len(users) == 1 for users in sessions.values())
    assert len(sessions) < SMALL.events / 2  # sessions hold several events on average


def test_too_few_events_for_the_users_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="cannot hold"):
        _events(SimulationParams(events=100, users=500, days=7))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"users": 0}, "at least 1"),
        ({"peak_hour": 24}, "peak_hour"),
        ({"activation_rate": 1.5}, "activation_rate"),
        ({"weekly_retention": 1.0}, "weekly_retention"),
        ({"spike_position": 1.5}, "spike_position"),
    ],
)
def test_invalid_params_are_refused(changes: dict[str, object], message: str) -> None:
    base = {"events": 1000, "users": 10, "days": 7}
    with pytest.raises(ValueError, match=message):
        SimulationParams(**{**base, **changes})  # type: ignore[arg-type]


def test_in_batches_covers_the_stream_in_order() -> None:
    chunks = list(in_batches(iter(range(12)), 5))  # type: ignore[arg-type]
    assert [len(c) for c in chunks] == [5, 5, 2]
    assert [x for c in chunks for x in c] == list(range(12))


def test_parts_are_disjoint_and_together_make_the_whole_stream() -> None:
    whole = {(e.event_id, e.timestamp, e.action) for e in _events()}
    parts = [{(e.event_id, e.timestamp, e.action) for e in simulate(SMALL, part, 3)} for part in range(3)]
    assert all(parts)
    assert sum(len(p) for p in parts) == len(whole)
    assert set().union(*parts) == whole


def test_a_part_outside_the_range_is_refused() -> None:
    with pytest.raises(ValueError, match="part"):
        simulate(SMALL, 3, 3)
