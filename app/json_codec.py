"""JSON text for metadata: orjson for speed, the standard library where orjson refuses (ints past 64 bits)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson


def _default(value: Any) -> Any:
    if isinstance(value, Mapping):  # the event's read-only metadata view
        return dict(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dump_json(value: Any) -> str:
    try:
        return orjson.dumps(value, default=_default).decode()
    except TypeError:
        # orjson stops at 64-bit integers; JSON itself has no such limit, so neither do we.
        return json.dumps(value, default=_default, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def load_json(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
