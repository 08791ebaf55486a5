"""Event-level limits: size, metadata shape, numbers, NUL characters, and the plausible time window.

These rules live in the service, not in the HTTP schemas: every way in (the JSON API, the Segment/PostHog-
compatible routes, an importer) builds events through EventService, so each gets the same rules without
repeating them; the window check needs the server clock, which the service owns (received_at); and the
rules are tested as plain functions. The HTTP schemas keep the field-level rules (types, lengths, control
characters), which the OpenAPI schema can state.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from app.json_codec import json_size
from app.models import InvalidEvent, UserActionEvent
from app.services.rejections import RejectionReason

INT_MIN = -(2**63)  # integers must fit in 64 bits, signed or unsigned: what JSON readers take exactly
INT_MAX = 2**64 - 1


@dataclass(frozen=True, slots=True)
class EventLimits:
    max_event_bytes: int = 32_768
    max_metadata_depth: int = 16
    max_metadata_keys: int = 512
    max_future: timedelta = timedelta(hours=24)
    earliest: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    # Clock-skew correction lets a client whose clock is far ahead through; this keeps every stored time
    # where each reader can represent it (a year-9999 instant is year 10000 in Berlin, past pandas' 2262).
    latest: datetime = datetime(2200, 1, 1, tzinfo=UTC)


_NUL_OR_SURROGATE = re.compile("[\x00\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _bad_text(value: str, pattern: re.Pattern[str] = _NUL_OR_SURROGATE) -> str | None:
    """None when the text is fine; else the reason: a NUL, or (unpaired surrogate, control) 'invalid'."""
    if pattern.search(value) is None:
        return None
    # An unpaired surrogate has no UTF-8 form, so no way to be stored; a control character has no place in a name.
    return "nul_character" if "\x00" in value else "invalid"


def _check_names(event: UserActionEvent) -> None:
    for name in ("user_id", "action", "source"):
        value: str = getattr(event, name)
        if not value:
            raise InvalidEvent(f"{name} must not be empty", field=name)
        reason = _bad_text(value, _CONTROL)
        if reason:
            message = f"{name} holds a NUL, control or unpaired surrogate character"
            raise InvalidEvent(message, reason=reason, field=name)


class _MetadataWalk:
    """One pass over metadata: depth, key count, text and numbers. Stops at the first fault.

    The path of the value being looked at is kept as a stack of keys and made into text only for an error.
    """

    def __init__(self, limits: EventLimits) -> None:
        self.limits = limits
        self.keys = 0
        self.trail: list[str] = ["metadata"]

    @property
    def path(self) -> str:
        return ".".join(self.trail)

    def visit(self, value: Any, depth: int) -> None:
        kind = type(value)  # exact types first: JSON gives only these, and isinstance on ABCs is slow
        if kind is str:
            self._text(value, "a value")
        elif kind is dict:
            self._object(value, depth)
        elif kind is list or kind is tuple:
            self._enter(depth)
            trail = self.trail
            for index, item in enumerate(value):
                trail.append(str(index))
                self.visit(item, depth + 1)
                trail.pop()
        elif kind is bool or value is None:
            return
        elif kind is int:
            if not INT_MIN <= value <= INT_MAX:
                raise InvalidEvent(
                    "integers must fit in 64 bits (-2**63 .. 2**64-1)",
                    reason=RejectionReason.NUMBER_OUT_OF_RANGE,
                    field=self.path,
                )
        elif kind is float:
            if not math.isfinite(value):
                raise InvalidEvent(
                    "numbers must be finite", reason=RejectionReason.NUMBER_OUT_OF_RANGE, field=self.path
                )
        elif kind is MappingProxyType or isinstance(value, Mapping):  # the event's read-only view of the top level
            self._object(value, depth)
        else:
            raise InvalidEvent(f"{kind.__name__} is not a JSON value", field=self.path)

    def _object(self, value: Mapping[Any, Any], depth: int) -> None:
        self._enter(depth)
        self.keys += len(value)
        if self.keys > self.limits.max_metadata_keys:
            raise InvalidEvent(
                f"metadata has more than {self.limits.max_metadata_keys} keys in all",
                reason=RejectionReason.METADATA_TOO_MANY_KEYS,
                field="metadata",
            )
        trail = self.trail
        for key, item in value.items():
            if type(key) is not str:
                raise InvalidEvent("metadata keys must be strings", field=self.path)
            trail.append(key)
            self._text(key, "a key")
            self.visit(item, depth + 1)
            trail.pop()

    def _enter(self, depth: int) -> None:
        if depth > self.limits.max_metadata_depth:
            raise InvalidEvent(
                f"metadata is nested deeper than {self.limits.max_metadata_depth} levels",
                reason=RejectionReason.METADATA_TOO_DEEP,
                field=self.path,
            )

    def _text(self, value: str, what: str) -> None:
        reason = _bad_text(value)
        if reason:
            raise InvalidEvent(f"{what} holds a NUL or an unpaired surrogate character", reason=reason, field=self.path)


# The stored JSON form less its four free parts: the keys, the fixed-width id and times, the separators.
_FIXED_PART = len(
    '{"event_id":"00000000-0000-0000-0000-000000000000","user_id":,"action":,"source":,'
    '"timestamp":"2000-01-01T00:00:00.000000Z","received_at":"2000-01-01T00:00:00.000000Z","sent_at":null,'
    '"metadata":}'
)
_SENT_AT_EXTRA = len('"2000-01-01T00:00:00.000000Z"') - len("null")


def serialised_size(event: UserActionEvent) -> int:
    """Bytes of the event as JSON (its stored and exported form), in UTF-8."""
    # One encoder call for the four free parts: [a,b,c,d] is their lengths plus 2 brackets and 3 commas.
    free = json_size([event.user_id, event.action, event.source, dict(event.metadata)]) - 5
    return _FIXED_PART + free + (_SENT_AT_EXTRA if event.sent_at else 0)


def _metadata_within_limits(metadata: Mapping[str, Any], limits: EventLimits) -> bool:
    """The fast path: True when metadata breaks no rule. A loop over containers, no path kept, no recursion;
    when it says False, _MetadataWalk goes over it again to say where and why."""
    max_depth, max_keys, keys = limits.max_metadata_depth, limits.max_metadata_keys, 0
    bad_text = _NUL_OR_SURROGATE.search
    stack: list[tuple[Any, int]] = [(metadata, 1)]
    while stack:
        container, depth = stack.pop()
        if depth > max_depth:
            return False
        if type(container) is list:
            values = container
        else:
            keys += len(container)
            if keys > max_keys:
                return False
            for key in container:
                if type(key) is not str or bad_text(key):
                    return False
            values = container.values()
        for value in values:
            kind = type(value)
            if kind is str:
                if bad_text(value):
                    return False
            elif kind is dict or kind is list:
                stack.append((value, depth + 1))
            elif kind is int:
                if not INT_MIN <= value <= INT_MAX:
                    return False
            elif kind is float:
                if not math.isfinite(value):
                    return False
            elif not (kind is bool or value is None):
                return False
    return True


def check_event(event: UserActionEvent, limits: EventLimits) -> None:
    """Raise InvalidEvent (with its reason and field) unless the event is within every limit."""
    _check_names(event)
    # Depth first (it bounds the recursion), then numbers and text, then the size of the whole.
    if not _metadata_within_limits(event.metadata, limits):
        _MetadataWalk(limits).visit(event.metadata, 1)  # raises, naming the field and the reason
    size = serialised_size(event)
    if size > limits.max_event_bytes:
        raise InvalidEvent(
            f"the event is {size} bytes as JSON; the most is {limits.max_event_bytes}",
            reason=RejectionReason.EVENT_TOO_LARGE,
        )
    for name in ("timestamp", "sent_at"):
        moment: datetime | None = getattr(event, name)
        if moment is not None and moment < limits.earliest:
            raise InvalidEvent(
                f"{name} is before {limits.earliest.isoformat()}", reason=RejectionReason.TIMESTAMP_TOO_OLD, field=name
            )
        if moment is not None and moment >= limits.latest:
            raise InvalidEvent(
                f"{name} is not before {limits.latest.isoformat()}", reason="timestamp_in_future", field=name
            )
    # Clock-skew correction: the client's clock is off by received_at - sent_at, so its timestamp is
    # compared as timestamp + skew. Written as a difference of client times, it cannot overflow.
    reference = event.sent_at or event.received_at
    if event.timestamp - reference > limits.max_future:
        hours = limits.max_future.total_seconds() / 3600
        raise InvalidEvent(
            f"timestamp is more than {hours:g} h ahead of the server clock"
            + (" (after correcting the client clock by sent_at)" if event.sent_at else ""),
            reason=RejectionReason.TIMESTAMP_IN_FUTURE,
            field="timestamp",
        )


def nests_deeper_than(value: Any, most: int) -> bool:
    """True when a JSON value has more than `most` levels of objects and arrays ({} is one level).

    A loop with its own stack, not recursion, so a value nested a thousand levels deep is measured, not a
    RecursionError; it stops at the first container past the bound.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > most:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, Mapping | list | tuple))
    return False
