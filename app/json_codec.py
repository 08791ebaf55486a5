"""JSON text for metadata: orjson for speed, the standard library where orjson refuses (ints past 64 bits)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import orjson

from app.models import UserActionEvent
from app.utc_text import to_utc_text


def orjson_default(value: Any) -> Any:
    """orjson's `default` for what it cannot write itself: the event's read-only metadata view (its exact
    type first, isinstance on an ABC is slow)."""
    if type(value) is MappingProxyType or isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dump_json(value: Any) -> str:
    try:
        return orjson.dumps(value, default=orjson_default).decode()
    except TypeError:
        # orjson stops at 64-bit integers; JSON itself has no such limit, so neither do we.
        return json.dumps(value, default=orjson_default, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def json_bytes(value: Any) -> bytes:
    """dump_json's text as UTF-8, without decoding orjson's bytes to encode them again."""
    try:
        return orjson.dumps(value, default=orjson_default)
    except TypeError:
        return dump_json(value).encode()


def json_size(value: Any) -> int:
    """Bytes of the value as compact UTF-8 JSON (what dump_json writes), without keeping the text."""
    try:
        return len(orjson.dumps(value, default=orjson_default))
    except TypeError:
        return len(dump_json(value).encode())


# orjson reads an integer past 64 bits as a float, silently losing digits: such text goes to the standard
# library. 19+ digits in a row is a cheap, conservative sign (it also catches long fractions and strings).
_LONG_DIGITS = re.compile(r"\d{19,}")
_LONG_DIGITS_BYTES = re.compile(rb"\d{19,}")


def load_json(text: str | bytes) -> Any:
    long_digits = _LONG_DIGITS_BYTES if isinstance(text, bytes) else _LONG_DIGITS
    if long_digits.search(text):  # type: ignore[arg-type]
        return json.loads(text)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def event_document(event: UserActionEvent) -> dict[str, Any]:
    """The event's JSON shape: what the API answers, what export writes, what the load generator sends."""
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
