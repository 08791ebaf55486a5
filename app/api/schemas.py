"""Request and response schemas of the HTTP API (pydantic lives here, at the edge, not in the domain)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StrictStr
from starlette.responses import Response

from app.json_codec import event_document, json_bytes
from app.repository.port import Cursor
from app.services.event_service import EventDraft
from app.utc_text import from_utc_text, to_utc_text

# No control characters (C0, DEL, C1), so no NUL either: these names end up in logs, labels and SQL text.
PLAIN_TEXT = r"^[^\x00-\x1f\x7f-\x9f]+$"
UserId = Annotated[StrictStr, Field(min_length=1, max_length=256, pattern=PLAIN_TEXT, examples=["user-42"])]
Name = Annotated[StrictStr, Field(min_length=1, max_length=128, pattern=PLAIN_TEXT)]


def _as_utc(moment: datetime) -> datetime:
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 has no UTC form
        raise ValueError("the moment is out of range in UTC") from None


_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso_text(value: Any) -> Any:
    # Pydantic would also take a number as Unix time ("until=0.5"): the schema says date-time text, so do we.
    if isinstance(value, datetime) or (isinstance(value, str) and _ISO_DATETIME.match(value)):
        return value
    raise ValueError("expected an ISO 8601 date-time text with a timezone, e.g. 2026-05-01T10:00:00Z")


# A timezone-aware moment, given as ISO 8601 text, that exists in UTC (stored and compared as UTC).
UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_as_utc)]


# What Swagger's "Try it out" starts from: no event_id (the server makes a new one per post, so a second click
# is another event, not a conflict) and real metadata instead of a generated {"additionalProp1": {}}.
EXAMPLE_EVENT: dict[str, Any] = {
    "user_id": "user-42",
    "action": "page_view",
    "source": "web",
    "metadata": {"page": "/pricing", "referrer": "search", "duration_ms": 5400},
}


class EventIn(BaseModel):
    """A user action as a client reports it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_EVENT]})

    event_id: UUID | None = Field(
        default=None, description="Client-chosen id that makes retries safe; the server makes a UUIDv7 if absent."
    )
    user_id: UserId
    action: Annotated[Name, Field(examples=["page_view"])]
    source: Annotated[Name, Field(examples=["web"])]
    timestamp: UtcDatetime | None = Field(
        default=None,
        description="When the action happened; must carry a timezone. Default: received_at. Not before "
        "timestamp_min (2000-01-01) and not more than timestamp_max_future_s (24 h) ahead of the server clock, "
        "after correcting the client clock by sent_at. Stored as given, never rewritten.",
    )
    sent_at: UtcDatetime | None = Field(
        default=None,
        description="Client clock when the request was sent: the server corrects the future-timestamp check by "
        "received_at - sent_at (the client's clock skew). Stored.",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Free JSON object: at most metadata_max_depth (16) levels deep and metadata_max_keys (512) "
        "keys in all, no NUL character, integers within 64 bits, finite numbers; the whole event at most "
        "event_max_bytes (32 KiB) as JSON.",
    )

    def to_draft(self) -> EventDraft:
        return EventDraft(
            user_id=self.user_id,
            action=self.action,
            source=self.source,
            metadata=self.metadata,
            event_id=self.event_id,
            timestamp=self.timestamp,
            sent_at=self.sent_at,
        )


class EventOut(BaseModel):
    event_id: UUID
    user_id: str
    action: str
    source: str
    timestamp: datetime
    received_at: datetime
    sent_at: datetime | None
    metadata: dict[str, Any]


class BatchIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"events": [EXAMPLE_EVENT, {**EXAMPLE_EVENT, "action": "click", "metadata": {"element": "button"}}]}
            ]
        },
    )

    events: list[Any] = Field(
        description="Events, each shaped like EventIn; each is validated on its own.",
        # Each item is shaped like EventIn, but a malformed item is reported in its result, not refused with
        # the whole batch: so the schema lets any item through (anyOf ..., {}) while naming the shape.
        json_schema_extra={"items": {"anyOf": [{"$ref": "#/components/schemas/EventIn"}, {}]}},
    )


ItemStatus = Literal["accepted", "duplicate", "conflict", "invalid"]


class BatchItemResult(BaseModel):
    index: int
    event_id: UUID | None
    status: ItemStatus
    errors: list[dict[str, str]] | None = None


class BatchOut(BaseModel):
    accepted: int
    duplicate: int
    conflict: int
    invalid: int
    results: list[BatchItemResult]


class EventPageOut(BaseModel):
    items: list[EventOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class BucketCount(BaseModel):
    start: datetime
    count: int


class StatsOut(BaseModel):
    total: int
    by_action: dict[str, int]
    by_source: dict[str, int]
    bucket: Literal["hour", "day"]
    by_bucket: list[BucketCount]


class JsonBody(Response):
    """JSON rendered with orjson, skipping a second validation pass of data we built ourselves."""

    media_type = "application/json"

    def __init__(self, content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> None:
        if headers is not None:
            super().__init__(content, status_code, headers)
            return
        # What Response.__init__ makes of a JSON body with no headers of its own, without its general case
        # (one of these answers every ingest request).
        self.status_code = status_code
        self.background = None
        self.body = body = json_bytes(content)
        self.raw_headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]

    def render(self, content: Any) -> bytes:
        return json_bytes(content)


event_json = event_document


class InvalidCursor(ValueError):
    pass


def encode_cursor(cursor: Cursor | None) -> str | None:
    if cursor is None:
        return None
    raw = f"{to_utc_text(cursor.timestamp)}|{cursor.event_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> Cursor:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        ts, event_id = raw.split("|")
        return Cursor(from_utc_text(ts), UUID(event_id))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursor("cursor is not one this service issued") from exc
