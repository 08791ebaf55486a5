"""Request and response schemas of the HTTP API (pydantic lives here, at the edge, not in the domain)."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictStr
from starlette.responses import Response

from app.json_codec import dump_json
from app.models import UserActionEvent, from_utc_text, to_utc_text
from app.repository.events_repository import Cursor
from app.services.event_service import EventDraft

UserId = Annotated[StrictStr, Field(min_length=1, max_length=256, examples=["user-42"])]
Name = Annotated[StrictStr, Field(min_length=1, max_length=128)]


class EventIn(BaseModel):
    """A user action as a client reports it."""

    model_config = ConfigDict(extra="forbid")

    event_id: UUID | None = Field(
        default=None, description="Client-chosen id that makes retries safe; the server makes a UUIDv7 if absent."
    )
    user_id: UserId
    action: Annotated[Name, Field(examples=["page_view"])]
    source: Annotated[Name, Field(examples=["web"])]
    timestamp: AwareDatetime | None = Field(
        default=None, description="When the action happened; must carry a timezone. Default: received_at."
    )
    sent_at: AwareDatetime | None = Field(default=None, description="Client clock when the request was sent.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Free JSON object.")

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
    model_config = ConfigDict(extra="forbid")

    events: list[Any] = Field(
        description="Events, each shaped like EventIn; each is validated on its own.",
        json_schema_extra={"items": {"$ref": "#/components/schemas/EventIn"}},
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

    def render(self, content: Any) -> bytes:
        return dump_json(content).encode()


def event_json(event: UserActionEvent) -> dict[str, Any]:
    return {
        "event_id": str(event.event_id),
        "user_id": event.user_id,
        "action": event.action,
        "source": event.source,
        "timestamp": to_utc_text(event.timestamp),
        "received_at": to_utc_text(event.received_at),
        "sent_at": to_utc_text(event.sent_at) if event.sent_at else None,
        "metadata": event.metadata,
    }


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
