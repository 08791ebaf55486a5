"""Event-level limits: size, metadata shape, numbers, NUL characters, and the plausible time window.

These rules live in the service, not in the HTTP schemas: every way in (the JSON API, the Segment/PostHog-
compatible routes, an importer) builds events through EventService, so each gets the same rules without
repeating them; the window check needs the server clock, which the service owns (received_at); and the
rules are tested as plain functions. The HTTP schemas keep the field-level rules (types, lengths, control
characters), which the OpenAPI schema can state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app.json_codec import dump_json
from app.models import InvalidEvent, UserActionEvent

INT_MIN = -(2**63)  # integers must fit in 64 bits, signed or unsigned: what JSON readers take exactly
INT_MAX = 2**64 - 1


@dataclass(frozen=True, slots=True)
class EventLimits:
    max_event_bytes: int = 32_768
    max_metadata_depth: int = 16
    max_metadata_keys: int = 512
    max_future: timedelta = timedelta(hours=24)
    earliest: datetime = datetime(2000, 1, 1, tzinfo=UTC)


def _bad_text(value: str) -> str | None:
    if "\x00" in value:
        return "nul_character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no UTF-8 form, so no way to store it
        return "invalid"
    return None


def _check_names(event: UserActionEvent) -> None:
    for name in ("user_id", "action", "source"):
        value: str = getattr(event, name)
        if not value:
            raise InvalidEvent(f"{name} must not be empty", field=name)
        reason = _bad_text(value)
        if reason is None and any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value):
            reason = "invalid"
        if reason:
            message = f"{name} holds a NUL, control or unpaired surrogate character"
            raise InvalidEvent(message, reason=reason, field=name)


class _MetadataWalk:
    """One pass over metadata: depth, key count, text and numbers. Stops at the first fault."""

    def __init__(self, limits: EventLimits) -> None:
        self.limits = limits
        self.keys = 0

    def visit(self, value: Any, depth: int, path: str) -> None:
        if isinstance(value, Mapping):
            self._enter(depth, path)
            self.keys += len(value)
            if self.keys > self.limits.max_metadata_keys:
                raise InvalidEvent(
                    f"metadata has more than {self.limits.max_metadata_keys} keys in all",
                    reason="metadata_too_many_keys",
                    field="metadata",
                )
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidEvent("metadata keys must be strings", field=path)
                self._text(key, f"{path}.{key}", "a key")
                self.visit(item, depth + 1, f"{path}.{key}")
        elif isinstance(value, list | tuple):
            self._enter(depth, path)
            for index, item in enumerate(value):
                self.visit(item, depth + 1, f"{path}.{index}")
        elif isinstance(value, str):
            self._text(value, path, "a value")
        elif isinstance(value, bool) or value is None:
            return
        elif isinstance(value, int):
            if not INT_MIN <= value <= INT_MAX:
                raise InvalidEvent(
                    "integers must fit in 64 bits (-2**63 .. 2**64-1)", reason="number_out_of_range", field=path
                )
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise InvalidEvent("numbers must be finite", reason="number_out_of_range", field=path)
        else:
            raise InvalidEvent(f"{type(value).__name__} is not a JSON value", field=path)

    def _enter(self, depth: int, path: str) -> None:
        if depth > self.limits.max_metadata_depth:
            raise InvalidEvent(
                f"metadata is nested deeper than {self.limits.max_metadata_depth} levels",
                reason="metadata_too_deep",
                field=path,
            )

    @staticmethod
    def _text(value: str, path: str, what: str) -> None:
        reason = _bad_text(value)
        if reason:
            raise InvalidEvent(f"{what} holds a NUL or an unpaired surrogate character", reason=reason, field=path)


def serialised_size(event: UserActionEvent) -> int:
    """Bytes of the event as JSON (its stored and exported form), in UTF-8."""
    return len(
        dump_json(
            {
                "event_id": str(event.event_id),
                "user_id": event.user_id,
                "action": event.action,
                "source": event.source,
                "timestamp": "2000-01-01T00:00:00.000000Z",  # fixed-width text: the width is what counts
                "received_at": "2000-01-01T00:00:00.000000Z",
                "sent_at": "2000-01-01T00:00:00.000000Z" if event.sent_at else None,
                "metadata": event.metadata,
            }
        ).encode()
    )


def check_event(event: UserActionEvent, limits: EventLimits) -> None:
    """Raise InvalidEvent (with its reason and field) unless the event is within every limit."""
    _check_names(event)
    # Depth first (it bounds the recursion), then numbers and text, then the size of the whole.
    _MetadataWalk(limits).visit(event.metadata, 1, "metadata")
    size = serialised_size(event)
    if size > limits.max_event_bytes:
        raise InvalidEvent(
            f"the event is {size} bytes as JSON; the most is {limits.max_event_bytes}", reason="event_too_large"
        )
    for name in ("timestamp", "sent_at"):
        moment: datetime | None = getattr(event, name)
        if moment is not None and moment < limits.earliest:
            raise InvalidEvent(
                f"{name} is before {limits.earliest.isoformat()}", reason="timestamp_too_old", field=name
            )
    # Clock-skew correction: the client's clock is off by received_at - sent_at, so its timestamp is
    # compared as timestamp + skew. Written as a difference of client times, it cannot overflow.
    reference = event.sent_at or event.received_at
    if event.timestamp - reference > limits.max_future:
        hours = limits.max_future.total_seconds() / 3600
        raise InvalidEvent(
            f"timestamp is more than {hours:g} h ahead of the server clock"
            + (" (after correcting the client clock by sent_at)" if event.sent_at else ""),
            reason="timestamp_in_future",
            field="timestamp",
        )
