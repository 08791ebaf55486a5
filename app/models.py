"""The domain: one immutable fact, a user action. Standard library only, on purpose.

Nothing here knows about HTTP, pydantic, a database driver, metrics or logging; a test in the suite
fails if this module ever imports one of them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any
from uuid import UUID

JsonObject = Mapping[str, Any]


class DomainError(Exception):
    """Base of the errors the domain and services raise; the HTTP layer maps each to a status."""


class InvalidEvent(DomainError):
    """The fact as given cannot be an event (naive timestamp, metadata that is not an object...).

    `reason` is one of a fixed set of words (counted in metrics), `field` names the offending field.
    """

    def __init__(self, message: str, *, reason: str = "invalid", field: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.field = field


@dataclass(frozen=True, slots=True)
class UserActionEvent:
    """Something a user did, as reported by a source. A fact: never updated, never deleted."""

    event_id: UUID
    user_id: str
    action: str
    timestamp: datetime
    source: str
    metadata: JsonObject = field(default_factory=dict)
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    sent_at: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("timestamp", "received_at", "sent_at"):
            value = getattr(self, name)
            if value is None:
                continue
            if value.tzinfo is UTC:
                continue
            if value.tzinfo is None or value.utcoffset() is None:
                raise InvalidEvent(f"{name} must carry a timezone", field=name)
            # Stored and compared as UTC, whatever offset the client used.
            try:
                object.__setattr__(self, name, value.astimezone(UTC))
            except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+01:00 is before datetime.min in UTC
                raise InvalidEvent(f"{name} is out of range", reason="timestamp_out_of_range", field=name) from exc
        if type(self.metadata) is not dict and not isinstance(self.metadata, Mapping):
            raise InvalidEvent("metadata must be a JSON object", field="metadata")
        # A read-only view: the event cannot be changed through its metadata either.
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    def same_fact_as(self, other: UserActionEvent) -> bool:
        """True when both describe the same fact; received_at is the server's, not the fact's."""
        return (
            self.event_id == other.event_id
            and self.user_id == other.user_id
            and self.action == other.action
            and self.source == other.source
            and self.timestamp == other.timestamp
            and self.sent_at == other.sent_at
            and canonical_json(self.metadata) == canonical_json(other.metadata)
        )

    def differing_fields(self, other: UserActionEvent) -> list[str]:
        """Names of the fields whose values differ between two events with one event_id."""
        names = ["user_id", "action", "source", "timestamp", "sent_at"]
        diff = [n for n in names if getattr(self, n) != getattr(other, n)]
        if canonical_json(self.metadata) != canonical_json(other.metadata):
            diff.append("metadata")
        return diff


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def canonical_json(metadata: JsonObject) -> str:
    """One text per JSON value: sorted keys, no spaces. Used to compare payloads, not to store them."""
    return json.dumps(_plain(metadata), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def is_finite_json(value: Any) -> bool:
    """False when a JSON value holds NaN or Infinity, which JSON itself cannot represent."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, Mapping):
        return all(is_finite_json(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(is_finite_json(v) for v in value)
    return True
