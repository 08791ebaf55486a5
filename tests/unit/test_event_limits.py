"""The event limits as pure rules, and the service applying them (counted, logged, batch items apart)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from app.models import InvalidEvent, UserActionEvent
from app.repository.memory import InMemoryEventRepository
from app.repository.port import AddResult, AddStatus, EventFilter, EventQuery
from app.services.event_limits import INT_MAX, INT_MIN, EventLimits, check_event, serialised_size
from app.services.event_service import EventDraft, EventService
from app.services.rejections import REJECTION_REASONS
from tests.unit.fakes import ImmediateWriter, ListLog, RecordingMetrics

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LIMITS = EventLimits()


def event(**overrides: Any) -> UserActionEvent:
    values: dict[str, Any] = {
        "event_id": uuid4(),
        "user_id": "u1",
        "action": "click",
        "source": "web",
        "timestamp": NOW,
        "metadata": {},
        "received_at": NOW,
    }
    values.update(overrides)
    return UserActionEvent(**values)


def refusal(limits: EventLimits = LIMITS, **overrides: Any) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        check_event(event(**overrides), limits)
    assert caught.value.reason in REJECTION_REASONS
    return caught.value


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"k": value}
    return value


def test_a_plain_event_passes() -> None:
    check_event(event(metadata={"page": "/pricing", "n": 3, "ok": True, "x": None, "f": 1.5}), LIMITS)


def test_metadata_depth_16_passes_and_17_is_too_deep() -> None:
    check_event(event(metadata=nested(16)), LIMITS)
    assert refusal(metadata=nested(17)).reason == "metadata_too_deep"
    assert refusal(metadata={"a": [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}).reason == "metadata_too_deep"  # 17 with lists


def test_deep_metadata_is_refused_without_recursing_through_all_of_it() -> None:
    deep: Any = 1
    for _ in range(100_000):
        deep = [deep]
    assert refusal(metadata={"a": deep}).reason == "metadata_too_deep"


def test_512_keys_in_all_pass_and_513_do_not() -> None:
    check_event(event(metadata={f"k{i}": i for i in range(512)}), LIMITS)
    spread = {"a": {f"k{i}": i for i in range(300)}, "b": {f"k{i}": i for i in range(211)}}  # 2 + 511
    assert refusal(metadata=spread).reason == "metadata_too_many_keys"


def test_event_of_the_size_limit_passes_and_one_byte_more_does_not() -> None:
    base = event(metadata={"pad": ""})
    room = LIMITS.max_event_bytes - serialised_size(base)
    check_event(event(metadata={"pad": "x" * room}), LIMITS)
    assert refusal(metadata={"pad": "x" * (room + 1)}).reason == "event_too_large"


def test_size_counts_utf8_bytes_not_characters() -> None:
    ascii_size = serialised_size(event(metadata={"t": "aaaa"}))
    assert serialised_size(event(metadata={"t": "éééé"})) == ascii_size + 4


@pytest.mark.parametrize(
    "metadata",
    [{"k": "a\x00b"}, {"a\x00": 1}, {"list": ["ok", "\x00"]}, {"deep": {"deeper": {"k\x00": True}}}],
)
def test_nul_anywhere_in_metadata_is_refused(metadata: dict[str, Any]) -> None:
    assert refusal(metadata=metadata).reason == "nul_character"


@pytest.mark.parametrize("field", ["user_id", "action", "source"])
def test_nul_in_a_name_is_refused(field: str) -> None:
    error = refusal(**{field: "a\x00b"})
    assert (error.reason, error.field) == ("nul_character", field)


@pytest.mark.parametrize("text", ["a\x1bb", "tab\there", "del\x7f", "c1\x85"])
def test_control_characters_in_names_are_refused(text: str) -> None:
    assert refusal(action=text).field == "action"


def test_unpaired_surrogate_in_metadata_is_refused() -> None:
    assert refusal(metadata={"k": "\ud800"}).field == "metadata.k"


def test_integers_must_fit_64_bits_and_floats_must_be_finite() -> None:
    check_event(event(metadata={"lo": INT_MIN, "hi": INT_MAX, "f": 1e308}), LIMITS)
    for bad in (INT_MIN - 1, INT_MAX + 1, 10**400, float("nan"), float("inf"), -float("inf")):
        assert refusal(metadata={"n": [bad]}).reason == "number_out_of_range"


def test_timestamp_24h_ahead_passes_and_a_second_more_does_not() -> None:
    check_event(event(timestamp=NOW + timedelta(hours=24)), LIMITS)
    assert refusal(timestamp=NOW + timedelta(hours=24, seconds=1)).reason == "timestamp_in_future"


def test_sent_at_corrects_the_future_check_by_the_client_clock_skew() -> None:
    # The client clock is 3 days ahead: it says sent_at = now + 3 d, and its timestamp 2 d ahead is "now - 1 d".
    skewed = {"sent_at": NOW + timedelta(days=3), "timestamp": NOW + timedelta(days=2)}
    checked = event(**skewed)
    check_event(checked, LIMITS)
    assert checked.timestamp == NOW + timedelta(days=2)  # stored as given, never rewritten
    # The same timestamp from a client whose clock is right is refused.
    assert refusal(sent_at=NOW, timestamp=NOW + timedelta(days=2)).reason == "timestamp_in_future"
    # A client clock behind makes the allowed window smaller, not larger.
    behind = {"sent_at": NOW - timedelta(hours=2), "timestamp": NOW + timedelta(hours=23)}
    assert refusal(**behind).reason == "timestamp_in_future"


def test_a_client_clock_centuries_ahead_cannot_store_times_readers_cannot_represent() -> None:
    # Skew correction alone would let 9999-12-31T23:30Z through (30 min after its sent_at); in a UTC+1
    # session that instant is in year 10000, and every read of it failed.
    far = datetime(9999, 12, 31, 23, 0, tzinfo=UTC)
    far_skewed = refusal(sent_at=far, timestamp=far + timedelta(minutes=30))
    assert (far_skewed.reason, far_skewed.field) == ("timestamp_in_future", "timestamp")
    just_under = datetime(2199, 12, 31, 23, 0, tzinfo=UTC)
    check_event(event(sent_at=just_under, timestamp=just_under + timedelta(minutes=30)), LIMITS)
    assert refusal(sent_at=datetime(2200, 1, 1, tzinfo=UTC), timestamp=NOW).field == "sent_at"


def test_timestamp_and_sent_at_before_2000_are_refused() -> None:
    check_event(event(timestamp=datetime(2000, 1, 1, tzinfo=UTC)), LIMITS)
    assert refusal(timestamp=datetime(1999, 12, 31, 23, 59, tzinfo=UTC)).reason == "timestamp_too_old"
    assert refusal(sent_at=datetime(1970, 1, 1, tzinfo=UTC)).field == "sent_at"


def test_timestamp_that_does_not_exist_in_utc_is_refused_as_invalid_event() -> None:
    from datetime import timezone

    with pytest.raises(InvalidEvent) as caught:
        event(timestamp=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))))
    assert caught.value.reason == "timestamp_out_of_range"


def test_limits_are_settings() -> None:
    tight = EventLimits(max_event_bytes=10_000, max_metadata_depth=2, max_metadata_keys=3, max_future=timedelta(0))
    assert refusal(tight, metadata=nested(3)).reason == "metadata_too_deep"
    assert refusal(tight, metadata={"a": 1, "b": 2, "c": 3, "d": 4}).reason == "metadata_too_many_keys"
    assert refusal(tight, timestamp=NOW + timedelta(seconds=1)).reason == "timestamp_in_future"


# -- the service applies the limits --


def build() -> tuple[EventService, InMemoryEventRepository, RecordingMetrics, ListLog]:
    repo = InMemoryEventRepository()
    metrics, log = RecordingMetrics(), ListLog()
    service = EventService(ImmediateWriter(repo), repo, metrics, log, clock=lambda: NOW, limits=EventLimits())
    return service, repo, metrics, log


def draft(**overrides: Any) -> EventDraft:
    values: dict[str, Any] = {"user_id": "u1", "action": "signup", "source": "web", "metadata": {}}
    values.update(overrides)
    return EventDraft(**values)


def test_service_refuses_an_event_over_a_limit_counts_and_logs_it_once_without_payload() -> None:
    service, repo, metrics, log = build()
    with pytest.raises(InvalidEvent):
        asyncio.run(service.record_event(draft(metadata={"secret": "s3cr3t", "bad": "\x00"})))
    assert metrics.rejected == {"nul_character": 1}
    assert [line["event"] for line in log.lines] == ["event_rejected"]
    assert "s3cr3t" not in repr(log.lines)
    assert list(repo.iter_events(_everything())) == []


def test_service_batch_keeps_valid_items_and_reports_each_refusal_in_place() -> None:
    service, repo, metrics, _ = build()
    drafts = [
        draft(action="ok1"),
        draft(metadata=nested(20)),
        draft(action="ok2"),
        draft(timestamp=NOW + timedelta(days=9)),
    ]
    outcomes = asyncio.run(service.record_batch(drafts))
    assert isinstance(outcomes[0], AddResult)
    assert outcomes[0].status is AddStatus.ACCEPTED
    assert isinstance(outcomes[1], InvalidEvent)
    assert outcomes[1].reason == "metadata_too_deep"
    assert isinstance(outcomes[2], AddResult)
    assert isinstance(outcomes[3], InvalidEvent)
    assert outcomes[3].reason == "timestamp_in_future"
    assert metrics.rejected == {"metadata_too_deep": 1, "timestamp_in_future": 1}
    assert sorted(e.action for e in repo.iter_events(_everything())) == ["ok1", "ok2"]


def test_service_batch_of_only_refusals_writes_nothing() -> None:
    service, repo, _, _ = build()
    outcomes = asyncio.run(service.record_batch([draft(user_id="a\x00")]))
    assert isinstance(outcomes[0], InvalidEvent)
    assert list(repo.iter_events(_everything())) == []


def _everything() -> EventQuery:
    return EventQuery(EventFilter(), 1000, None)


@pytest.mark.parametrize("sent_at", [None, NOW])
def test_serialised_size_is_the_length_of_the_stored_json_form(sent_at: datetime | None) -> None:
    from app.api.schemas import event_json
    from app.json_codec import dump_json

    checked = event(
        user_id='ü"ser', action="a\\b", metadata={"k": [1, "é", {"x": None}], "big": INT_MAX}, sent_at=sent_at
    )
    assert serialised_size(checked) == len(dump_json(event_json(checked)).encode())
