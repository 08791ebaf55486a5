"""Segment and PostHog messages as user actions: pure functions, no I/O, no framework.

Each function takes one message as the SDK sent it (a parsed JSON value) and returns an EventDraft,
an `Acknowledged` (identify, group, alias: answered but not recorded), or raises `UnmappableMessage`
with a reason the HTTP layer returns to the client. The README's mapping table describes these rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from app.models import DomainError, is_finite_json
from app.services.event_service import EventDraft

USER_ID_MAX = 256
NAME_MAX = 128
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# Namespaces of the deterministic event_id made from an SDK message id that is not a UUID:
# the same message id always gives the same event_id, so an SDK's retry is a duplicate, not a new event.
SEGMENT_NAMESPACE = uuid5(NAMESPACE_URL, "urn:telemetry:sdk:segment")
POSTHOG_NAMESPACE = uuid5(NAMESPACE_URL, "urn:telemetry:sdk:posthog")

SEGMENT_RECORDED_TYPES = frozenset({"track", "page", "screen"})
SEGMENT_ACKNOWLEDGED_TYPES = frozenset({"identify", "group", "alias"})
# Segment context kept in metadata["context"]. Left out on purpose: ip, userAgent, traits, location
# and device ids (personal data), and anything else not listed.
SEGMENT_CONTEXT_KEPT = ("app", "campaign", "library", "locale", "os", "page", "screen", "timezone", "device")
SEGMENT_DEVICE_DROPPED = frozenset({"id", "advertisingId", "token"})

# PostHog events about people and groups rather than actions: acknowledged, not recorded.
POSTHOG_ACKNOWLEDGED_EVENTS = frozenset(
    {"$identify", "$create_alias", "$groupidentify", "$set", "$set_once", "$merge_dangerously"}
)
# `$`-prefixed PostHog properties kept in metadata; every other `$` property is an SDK internal and dropped.
POSTHOG_PROPERTIES_KEPT = frozenset(
    {
        "$current_url",
        "$pathname",
        "$host",
        "$referrer",
        "$referring_domain",
        "$screen_name",
        "$browser",
        "$os",
        "$device_type",
        "$session_id",
        "$groups",
        "$lib_version",
    }
)


class UnmappableMessage(DomainError):
    """The message cannot become a user action; str(exc) says why (returned to the client)."""


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """A message answered with success but not turned into a user action (identify, group, alias...)."""

    kind: str


def segment_message_to_draft(
    message: Any,
    *,
    default_type: str | None = None,
    batch_sent_at: Any = None,
    source_override: str | None = None,
) -> EventDraft | Acknowledged:
    """One Segment message (track, page, screen; identify, group, alias acknowledged) as an EventDraft."""
    if not isinstance(message, Mapping):
        raise UnmappableMessage("a message must be a JSON object")
    kind = message.get("type", default_type)
    if default_type is not None and kind != default_type:
        raise UnmappableMessage(f"a message of another type sent to the {default_type} endpoint")
    if kind in SEGMENT_ACKNOWLEDGED_TYPES:
        return Acknowledged(str(kind))
    if kind not in SEGMENT_RECORDED_TYPES:
        raise UnmappableMessage("unknown type; expected one of track, page, screen, identify, group, alias")

    user_id = _identity(message.get("userId")) or _identity(message.get("anonymousId"))
    if user_id is None:
        raise UnmappableMessage("userId or anonymousId is required")
    _check_length("userId", user_id, USER_ID_MAX)

    properties = message.get("properties", {})
    if properties is None:
        properties = {}
    if not isinstance(properties, Mapping):
        raise UnmappableMessage("properties must be a JSON object")
    metadata: dict[str, Any] = dict(properties)

    if kind == "track":
        action = message.get("event")
        if not isinstance(action, str) or not action.strip():
            raise UnmappableMessage("a track call needs a non-empty `event`")
    else:
        action = "page_viewed" if kind == "page" else "screen_viewed"
        for key in ("name", "category"):
            value = message.get(key)
            if isinstance(value, str) and value:
                metadata[key] = value
    _check_length("event", action, NAME_MAX)

    context = message.get("context")
    context = context if isinstance(context, Mapping) else {}
    kept = _segment_context(context)
    if kept:
        metadata["context"] = kept
    anonymous_id = _identity(message.get("anonymousId"))
    if anonymous_id is not None and anonymous_id != user_id:
        metadata["anonymous_id"] = anonymous_id
    _check_metadata(metadata)

    library = context.get("library")
    library_name = library.get("name") if isinstance(library, Mapping) else None
    source = source_override or _name_or(library_name, "segment")

    sent_at = message.get("sentAt", batch_sent_at)
    return EventDraft(
        user_id=user_id,
        action=action,
        source=source,
        metadata=metadata,
        event_id=message_event_id(message.get("messageId"), SEGMENT_NAMESPACE),
        timestamp=parse_client_time("timestamp", message.get("timestamp", message.get("originalTimestamp"))),
        sent_at=parse_client_time("sentAt", sent_at),
    )


def posthog_event_to_draft(
    event: Any,
    *,
    received_at: datetime,
    batch_sent_at: Any = None,
    source_override: str | None = None,
) -> EventDraft | Acknowledged:
    """One PostHog capture event as an EventDraft; person and group events are acknowledged only."""
    if not isinstance(event, Mapping):
        raise UnmappableMessage("an event must be a JSON object")
    action = event.get("event")
    if not isinstance(action, str) or not action.strip():
        raise UnmappableMessage("`event` must be a non-empty string")
    if action in POSTHOG_ACKNOWLEDGED_EVENTS:
        return Acknowledged(action)
    _check_length("event", action, NAME_MAX)

    properties = event.get("properties", {})
    if properties is None:
        properties = {}
    if not isinstance(properties, Mapping):
        raise UnmappableMessage("properties must be a JSON object")
    user_id = _identity(event.get("distinct_id")) or _identity(properties.get("distinct_id"))
    if user_id is None:
        raise UnmappableMessage("distinct_id is required")
    _check_length("distinct_id", user_id, USER_ID_MAX)

    metadata = {k: v for k, v in properties.items() if not k.startswith("$") or k in POSTHOG_PROPERTIES_KEPT}
    metadata.pop("distinct_id", None)
    metadata.pop("token", None)  # the project key posthog-js puts in every event
    _check_metadata(metadata)

    source = source_override or _name_or(properties.get("$lib"), "posthog")
    sent_at = parse_client_time("sent_at", event.get("sent_at", batch_sent_at))
    timestamp = parse_client_time("timestamp", event.get("timestamp"))
    offset = event.get("offset")
    derived: frozenset[str] = frozenset()
    if timestamp is None and offset is not None:
        # Derived from the send time, which each retry sends anew: not compared with a stored copy.
        derived = frozenset({"timestamp"})
        # posthog-js may send `offset` (ms between the action and the send) instead of a timestamp.
        if isinstance(offset, bool) or not isinstance(offset, int | float) or not 0 <= offset < 10**12:
            raise UnmappableMessage("offset must be a non-negative number of milliseconds")
        try:
            timestamp = (sent_at or received_at) - timedelta(milliseconds=offset)
        except OverflowError as exc:
            raise UnmappableMessage("offset puts the timestamp before the year 1") from exc

    return EventDraft(
        user_id=user_id,
        action=action,
        source=source,
        metadata=metadata,
        event_id=message_event_id(event.get("uuid"), POSTHOG_NAMESPACE),
        timestamp=timestamp,
        sent_at=sent_at,
        derived=derived,
    )


def message_event_id(message_id: Any, namespace: UUID) -> UUID | None:
    """The SDK's message id as is when it is a UUID, else a UUIDv5 of it (stable across retries)."""
    if message_id is None or message_id == "":
        return None
    if isinstance(message_id, bool) or not isinstance(message_id, str | int):
        raise UnmappableMessage("the message id must be a string")
    text = str(message_id)
    if len(text) > 1024:
        raise UnmappableMessage("the message id is longer than 1024 characters")
    try:
        return UUID(text)
    except ValueError:
        return uuid5(namespace, text)


def parse_client_time(field: str, value: Any) -> datetime | None:
    """An SDK's ISO-8601 time as an aware UTC datetime; a time without an offset is read as UTC."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise UnmappableMessage(f"{field} must be an ISO-8601 date-time string")
    try:
        moment = datetime.fromisoformat(value.strip())
        if moment.tzinfo is None or moment.utcoffset() is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise UnmappableMessage(f"{field} is not an ISO-8601 date-time within years 1-9999") from exc


def _identity(value: Any) -> str | None:
    """SDKs send ids as strings or numbers; an empty one counts as absent."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None


def _check_length(field: str, value: str, most: int) -> None:
    if len(value) > most:
        raise UnmappableMessage(f"{field} is {len(value)} characters; the most is {most}")


def _check_metadata(metadata: Mapping[str, Any]) -> None:
    if not is_finite_json(metadata):
        raise UnmappableMessage("properties hold NaN or Infinity, which JSON cannot carry")


def _name_or(value: Any, default: str) -> str:
    """An SDK-supplied name (its library) when it is plain text of a usable length, else the default."""
    plain = isinstance(value, str) and value.strip() != "" and len(value) <= NAME_MAX and not _CONTROL.search(value)
    return value if plain else default


def _segment_context(context: Mapping[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key in SEGMENT_CONTEXT_KEPT:
        value = context.get(key)
        if value is None:
            continue
        if key == "device" and isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if k not in SEGMENT_DEVICE_DROPPED}
        kept[key] = value
    return kept
