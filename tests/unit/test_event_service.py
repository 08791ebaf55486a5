import asyncio
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from app.models import InvalidEvent
from app.repository.memory import InMemoryEventRepository
from app.repository.port import AddResult, AddStatus
from app.services.event_service import EventConflict, EventDraft, EventNotFound, EventService, Refusal
from app.services.rejections import REJECTION_REASONS, RejectionReason
from tests.unit.fakes import ImmediateWriter, ListLog, RecordingMetrics

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FIXED_ID = UUID("01900000-0000-7000-8000-000000000001")


def build() -> tuple[EventService, InMemoryEventRepository, RecordingMetrics, ListLog, ImmediateWriter]:
    repo = InMemoryEventRepository()
    metrics, log = RecordingMetrics(), ListLog()
    writer = ImmediateWriter(repo)
    service = EventService(writer, repo, metrics, log, clock=lambda: NOW, new_id=lambda: FIXED_ID)
    return service, repo, metrics, log, writer


def draft(**overrides: object) -> EventDraft:
    values: dict[str, object] = {"user_id": "u1", "action": "signup", "source": "web", "metadata": {"email": "a@b.c"}}
    values.update(overrides)
    return EventDraft(**values)  # type: ignore[arg-type]


def test_new_event_gets_server_id_and_received_at_as_default_timestamp() -> None:
    service, repo, metrics, log, _ = build()
    result = asyncio.run(service.record_event(draft()))
    assert result.status is AddStatus.ACCEPTED
    assert result.event.event_id == FIXED_ID
    assert result.event.timestamp == NOW == result.event.received_at
    assert repo.get(FIXED_ID) == result.event
    assert metrics.recorded == [("signup", "web")]


def test_recorded_event_is_logged_once_without_metadata_values() -> None:
    service, _, _, log, _ = build()
    asyncio.run(service.record_event(draft()))
    recorded = [line for line in log.lines if line["event"] == "event_recorded"]
    assert len(recorded) == 1
    assert recorded[0]["event_id"] == str(FIXED_ID)
    assert "a@b.c" not in repr(log.lines)
    assert "metadata" not in recorded[0]


def test_retry_with_same_payload_is_a_duplicate_stored_once() -> None:
    service, repo, metrics, log, _ = build()
    event_id = uuid4()
    first = asyncio.run(service.record_event(draft(event_id=event_id, timestamp=NOW)))
    again = asyncio.run(service.record_event(draft(event_id=event_id, timestamp=NOW)))
    assert again.status is AddStatus.DUPLICATE
    assert again.event == first.event
    assert metrics.duplicates == 1
    assert len(metrics.recorded) == 1
    assert len([line for line in log.lines if line["event"] == "event_recorded"]) == 1


def test_same_id_with_other_payload_raises_conflict_naming_the_fields() -> None:
    service, _, metrics, _, _ = build()
    event_id = uuid4()
    asyncio.run(service.record_event(draft(event_id=event_id, timestamp=NOW)))
    with pytest.raises(EventConflict) as caught:
        asyncio.run(service.record_event(draft(event_id=event_id, timestamp=NOW, action="purchase")))
    assert caught.value.fields == ("action",)
    assert metrics.rejected == {"conflict": 1}


def test_batch_is_one_append_with_a_result_per_draft() -> None:
    service, _, metrics, _, writer = build()
    ids = [uuid4() for _ in range(3)]
    drafts = [draft(event_id=i, timestamp=NOW) for i in ids]
    drafts.append(draft(event_id=ids[0], timestamp=NOW, user_id="someone-else"))
    results = asyncio.run(service.record_batch(drafts))
    assert [r.status for r in results] == [AddStatus.ACCEPTED] * 3 + [AddStatus.CONFLICT]
    assert writer.appends == [4]
    assert len(metrics.recorded) == 3


def test_missing_event_raises_not_found() -> None:
    service, *_ = build()
    with pytest.raises(EventNotFound):
        service.get_event(uuid4())


def test_a_batch_answers_each_item_in_input_order_and_counts_refusals_by_reason() -> None:
    service, repo, metrics, log, writer = build()
    ids = [uuid4(), uuid4()]
    acknowledged = ("acknowledged", "identify")  # anything else a caller decided: handed back in its place
    items = [
        Refusal(RejectionReason.INVALID, "not an object"),
        draft(event_id=ids[0]),
        acknowledged,
        draft(event_id=uuid4(), metadata={"k": "\x00"}),  # outside the event limits: refused by the service
        Refusal(RejectionReason.INVALID, "no user"),
        Refusal(RejectionReason.EVENT_TOO_LARGE, "too large"),
        draft(event_id=ids[1]),
    ]
    outcomes = asyncio.run(service.record_batch(items, sdk="segment"))
    assert [outcomes[i] is items[i] for i in (0, 2, 4, 5)] == [True] * 4
    invalid = outcomes[3]
    assert isinstance(invalid, InvalidEvent)
    assert invalid.reason == "nul_character"
    stored = [outcomes[1], outcomes[6]]
    assert [o.event.event_id for o in stored if isinstance(o, AddResult)] == ids
    assert writer.appends == [2]  # the two valid drafts in one commit
    assert metrics.rejected == {"invalid": 2, "event_too_large": 1, "nul_character": 1}
    counted = [(line["reason"], line["count"]) for line in log.lines if line["event"] == "event_rejected"]
    assert sorted(counted) == [("event_too_large", 1), ("invalid", 2), ("nul_character", 1)]
    assert all(line.get("sdk") == "segment" for line in log.lines if line.get("count") == 2)
    assert repo.get(ids[0]) is not None


def test_a_reason_outside_the_fixed_set_fails_loudly_instead_of_counting_as_invalid() -> None:
    with pytest.raises(ValueError, match="misspelt"):
        RejectionReason("misspelt")
    assert set(RejectionReason) == set(REJECTION_REASONS)  # each reason documented
