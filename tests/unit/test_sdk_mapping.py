"""The pure mapping of Segment and PostHog messages onto user actions (README: 'Already using Segment or PostHog?')."""

import asyncio
import gzip
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4, uuid5

import pytest

from app.api.compat.body import GZIP_WBITS, BodyTooLarge, BoundedInflater, UnreadableBody, wbits_for
from app.api.compat.keys import basic_auth_user
from app.api.compat.sdk_mapping import (
    POSTHOG_NAMESPACE,
    SEGMENT_NAMESPACE,
    Acknowledged,
    UnmappableMessage,
    message_event_id,
    parse_client_time,
    posthog_event_to_draft,
    segment_message_to_draft,
)
from app.repository.memory import InMemoryEventRepository
from app.repository.port import AddStatus
from app.services.event_service import EventDraft, EventService
from tests.unit.fakes import ImmediateWriter, ListLog, RecordingMetrics

MESSAGE_ID = "0b9e8e4e-6a43-4a55-9b5a-6b8f1f7a3c10"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def segment(**overrides: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "track",
        "event": "Order Completed",
        "userId": "user-7",
        "anonymousId": "anon-7",
        "properties": {"revenue": 12.5, "plan": "pro"},
        "context": {
            "library": {"name": "analytics.js", "version": "5.0.0"},
            "page": {"path": "/checkout"},
            "ip": "203.0.113.9",
            "userAgent": "Mozilla/5.0",
            "traits": {"email": "someone@example.org"},
            "device": {"type": "ios", "id": "device-secret", "advertisingId": "ad-secret"},
        },
        "timestamp": "2026-03-01T10:00:00.123+02:00",
        "sentAt": "2026-03-01T08:00:01Z",
        "messageId": MESSAGE_ID,
    }
    message.update(overrides)
    return message


def mapped(message: Any, **kwargs: Any) -> EventDraft:
    draft = segment_message_to_draft(message, **kwargs)
    assert isinstance(draft, EventDraft)
    return draft


def test_segment_track_maps_every_field() -> None:
    draft = mapped(segment())
    assert draft.user_id == "user-7"
    assert draft.action == "Order Completed"
    assert draft.source == "analytics.js"
    assert draft.event_id == UUID(MESSAGE_ID)
    assert draft.timestamp == datetime(2026, 3, 1, 8, 0, 0, 123000, tzinfo=UTC)
    assert draft.sent_at == datetime(2026, 3, 1, 8, 0, 1, tzinfo=UTC)
    assert draft.metadata["revenue"] == 12.5
    assert draft.metadata["plan"] == "pro"
    assert draft.metadata["anonymous_id"] == "anon-7"


def test_segment_context_keeps_chosen_keys_and_drops_personal_ones() -> None:
    context = mapped(segment()).metadata["context"]
    assert context["page"] == {"path": "/checkout"}
    assert context["library"] == {"name": "analytics.js", "version": "5.0.0"}
    assert context["device"] == {"type": "ios"}
    assert not {"ip", "userAgent", "traits"} & set(context)


def test_segment_anonymous_id_is_the_user_when_user_id_is_missing() -> None:
    draft = mapped(segment(userId=None))
    assert draft.user_id == "anon-7"
    assert "anonymous_id" not in draft.metadata


def test_segment_numeric_user_id_becomes_text() -> None:
    assert mapped(segment(userId=42)).user_id == "42"


@pytest.mark.parametrize(("kind", "action"), [("page", "page_viewed"), ("screen", "screen_viewed")])
def test_segment_page_and_screen_carry_their_name_in_metadata(kind: str, action: str) -> None:
    draft = mapped(segment(type=kind, event=None, name="Pricing", category="Docs"))
    assert draft.action == action
    assert draft.metadata["name"] == "Pricing"
    assert draft.metadata["category"] == "Docs"


@pytest.mark.parametrize("kind", ["identify", "group", "alias"])
def test_segment_identify_group_alias_are_acknowledged_not_recorded(kind: str) -> None:
    assert segment_message_to_draft(segment(type=kind)) == Acknowledged(kind)


def test_segment_single_endpoint_takes_its_type_when_the_body_has_none() -> None:
    message = segment()
    del message["type"]
    assert mapped(message, default_type="track").action == "Order Completed"
    with pytest.raises(UnmappableMessage, match="another type sent to the page endpoint"):
        segment_message_to_draft(segment(), default_type="page")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"userId": None, "anonymousId": None}, "userId or anonymousId is required"),
        ({"userId": "", "anonymousId": "  "}, "userId or anonymousId is required"),
        ({"event": ""}, "non-empty `event`"),
        ({"type": "purchase"}, "unknown type"),
        ({"properties": ["a"]}, "properties must be a JSON object"),
        ({"userId": "u" * 257}, "the most is 256"),
        ({"event": "e" * 129}, "the most is 128"),
        ({"timestamp": "yesterday"}, "not an ISO-8601"),
        ({"properties": {"x": float("nan")}}, "NaN"),
        ({"messageId": {"id": 1}}, "message id must be a string"),
    ],
)
def test_segment_unmappable_messages_say_why(overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(UnmappableMessage, match=reason):
        segment_message_to_draft(segment(**overrides))


def test_segment_source_setting_overrides_library_and_default_is_segment() -> None:
    assert mapped(segment(), source_override="shop").source == "shop"
    assert mapped(segment(context={})).source == "segment"
    assert mapped(segment(context={"library": {"name": "lib\x00"}})).source == "segment"


def test_segment_message_sent_at_wins_over_the_batch_one() -> None:
    batch_sent = "2026-03-01T09:00:00Z"
    assert mapped(segment(), batch_sent_at=batch_sent).sent_at == datetime(2026, 3, 1, 8, 0, 1, tzinfo=UTC)
    without = segment()
    del without["sentAt"]
    assert mapped(without, batch_sent_at=batch_sent).sent_at == datetime(2026, 3, 1, 9, tzinfo=UTC)


def test_message_id_that_is_not_a_uuid_gives_a_stable_uuid5_per_sdk() -> None:
    first = message_event_id("order-123", SEGMENT_NAMESPACE)
    assert first == message_event_id("order-123", SEGMENT_NAMESPACE) == uuid5(SEGMENT_NAMESPACE, "order-123")
    assert first != message_event_id("order-124", SEGMENT_NAMESPACE)
    assert first != message_event_id("order-123", POSTHOG_NAMESPACE)
    assert message_event_id(MESSAGE_ID.upper(), SEGMENT_NAMESPACE) == UUID(MESSAGE_ID)
    assert message_event_id(None, SEGMENT_NAMESPACE) is None


def test_client_time_without_offset_is_read_as_utc() -> None:
    assert parse_client_time("t", "2026-03-01T10:00:00") == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert parse_client_time("t", None) is None
    with pytest.raises(UnmappableMessage):
        parse_client_time("t", 1_700_000_000)


def posthog(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event": "clicked buy",
        "distinct_id": "user-9",
        "uuid": MESSAGE_ID,
        "timestamp": "2026-03-01T11:59:00+00:00",
        "properties": {
            "button": "buy",
            "$lib": "posthog-python",
            "$lib_version": "7.91.1",
            "$geoip_disable": True,
            "$is_server": True,
            "$current_url": "https://shop.example/cart",
            "token": "phc_secret",
        },
    }
    event.update(overrides)
    return event


def ph_mapped(event: Any, **kwargs: Any) -> EventDraft:
    draft = posthog_event_to_draft(event, received_at=NOW, **kwargs)
    assert isinstance(draft, EventDraft)
    return draft


def test_posthog_event_maps_every_field_and_drops_sdk_internals() -> None:
    draft = ph_mapped(posthog(), batch_sent_at="2026-03-01T11:59:30Z")
    assert draft.user_id == "user-9"
    assert draft.action == "clicked buy"
    assert draft.source == "posthog-python"
    assert draft.event_id == UUID(MESSAGE_ID)
    assert draft.timestamp == datetime(2026, 3, 1, 11, 59, tzinfo=UTC)
    assert draft.sent_at == datetime(2026, 3, 1, 11, 59, 30, tzinfo=UTC)
    assert dict(draft.metadata) == {
        "button": "buy",
        "$lib_version": "7.91.1",
        "$current_url": "https://shop.example/cart",
    }


def test_posthog_offset_without_timestamp_counts_back_from_sent_at_or_receipt() -> None:
    sent = "2026-03-01T11:00:00Z"
    draft = ph_mapped(posthog(timestamp=None, offset=1500), batch_sent_at=sent)
    assert draft.timestamp == datetime(2026, 3, 1, 11, tzinfo=UTC) - timedelta(milliseconds=1500)
    assert ph_mapped(posthog(timestamp=None, offset=250)).timestamp == NOW - timedelta(milliseconds=250)
    with pytest.raises(UnmappableMessage, match="offset"):
        posthog_event_to_draft(posthog(timestamp=None, offset=-1), received_at=NOW)


@pytest.mark.parametrize("name", ["$identify", "$create_alias", "$groupidentify", "$set"])
def test_posthog_person_and_group_events_are_acknowledged_not_recorded(name: str) -> None:
    assert posthog_event_to_draft(posthog(event=name), received_at=NOW) == Acknowledged(name)


def test_posthog_without_distinct_id_is_refused() -> None:
    with pytest.raises(UnmappableMessage, match="distinct_id is required"):
        posthog_event_to_draft(posthog(distinct_id=None), received_at=NOW)


def test_posthog_uuid_that_is_not_a_uuid_gives_a_stable_uuid5() -> None:
    assert ph_mapped(posthog(uuid="evt-1")).event_id == uuid5(POSTHOG_NAMESPACE, "evt-1")


def test_posthog_source_falls_back_to_posthog_and_setting_overrides() -> None:
    assert ph_mapped(posthog(properties={})).source == "posthog"
    assert ph_mapped(posthog(), source_override="backend").source == "backend"


def test_inflater_stops_a_decompression_bomb_at_the_cap() -> None:
    bomb = gzip.compress(b"\0" * (20 * 1024 * 1024))
    inflater = BoundedInflater(GZIP_WBITS, 1024 * 1024)

    def feed_all() -> None:
        for start in range(0, len(bomb), 4096):
            inflater.feed(bomb[start : start + 4096])

    with pytest.raises(BodyTooLarge):
        feed_all()
    assert len(bomb) < 64 * 1024


def test_inflater_reads_concatenated_gzip_members_and_refuses_truncated_data() -> None:
    inflater = BoundedInflater(GZIP_WBITS, 1000)
    inflater.feed(gzip.compress(b'{"a":') + gzip.compress(b"1}"))
    assert inflater.finish() == b'{"a":1}'
    truncated = BoundedInflater(GZIP_WBITS, 1000)
    truncated.feed(gzip.compress(b"hello")[:-6])
    with pytest.raises(UnreadableBody):
        truncated.finish()
    broken = BoundedInflater(zlib.MAX_WBITS, 1000)
    with pytest.raises(UnreadableBody):
        broken.feed(b"not deflate at all")


def test_content_encodings() -> None:
    assert wbits_for("") is None
    assert wbits_for("GZIP") == GZIP_WBITS
    with pytest.raises(UnreadableBody, match="not supported"):
        wbits_for("br")


def test_basic_auth_user_is_the_write_key() -> None:
    assert basic_auth_user("Basic d2stMTIzOg==") == "wk-123"  # base64("wk-123:")
    assert basic_auth_user("Bearer abc") is None
    assert basic_auth_user("Basic !!!") is None


def test_sdk_resend_with_a_fresh_sent_at_is_a_duplicate_not_a_conflict() -> None:
    repo = InMemoryEventRepository()
    metrics = RecordingMetrics()
    service = EventService(ImmediateWriter(repo), repo, metrics, ListLog(), clock=lambda: NOW)
    event_id = uuid4()
    first = EventDraft("u1", "signup", "sdk", {}, event_id=event_id, timestamp=NOW, sent_at=NOW)
    resend = EventDraft("u1", "signup", "sdk", {}, event_id=event_id, timestamp=NOW, sent_at=NOW + timedelta(seconds=2))
    other = EventDraft("u1", "logout", "sdk", {}, event_id=event_id, timestamp=NOW, sent_at=NOW + timedelta(seconds=3))

    async def run() -> list[AddStatus]:
        await service.record_batch([first], resend_may_change_sent_at=True)
        strict = await service.record_batch([resend])
        tolerant = await service.record_batch([resend, other], resend_may_change_sent_at=True)
        return [r.status for r in (*strict, *tolerant)]

    assert asyncio.run(run()) == [AddStatus.CONFLICT, AddStatus.DUPLICATE, AddStatus.CONFLICT]
    assert metrics.duplicates == 1
    assert metrics.rejected == {"conflict": 2}
    stored = repo.get(event_id)
    assert stored is not None
    assert stored.sent_at == NOW
