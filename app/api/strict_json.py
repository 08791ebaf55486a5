"""Strict JSON for request bodies, and the route class that uses it.

The standard parser is lenient where a hostile client can hurt us: it takes NaN and Infinity, turns 1e400
into infinity, keeps the last of duplicate keys, lets lone surrogates ("\\ud800") through into strings
no database can store, and recurses without a bound of its own. Here each of those is a 400.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response

MAX_INT_DIGITS = 40  # far past 64 bits; the service refuses integers outside 64 bits with a clear 422
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class StrictJsonError(ValueError):
    pass


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise StrictJsonError(f"number out of range: {text[:40]}")
    return value


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise StrictJsonError(f"integer with more than {MAX_INT_DIGITS} digits")
    return int(text)


def _parse_constant(name: str) -> Any:
    raise StrictJsonError(f"{name} is not a JSON value")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise StrictJsonError(f"duplicate key {key[:64]!r}")
            seen.add(key)
    return obj


def _has_unpaired_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:  # a loop, not recursion: the value may be nested as deep as the parser allowed
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def parse_strict_json(body: bytes) -> Any:
    """The JSON value of a UTF-8 body, or StrictJsonError saying what is wrong with it."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StrictJsonError(f"the body is not valid UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(
            text,
            parse_float=_parse_float,
            parse_int=_parse_int,
            parse_constant=_parse_constant,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as exc:
        raise StrictJsonError(f"{exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise StrictJsonError("nested too deeply") from None
    if _SURROGATE_ESCAPE.search(text) and _has_unpaired_surrogate(value):
        raise StrictJsonError("a string holds an unpaired surrogate (\\ud800-\\udfff)")
    return value


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = parse_strict_json(await self.body())
            except StrictJsonError as exc:
                # FastAPI turns this into a json_invalid validation error: our handler answers 400.
                raise json.JSONDecodeError(str(exc), "", 0) from exc
        return self._json


def is_json_media_type(content_type: str | None) -> bool:
    """application/json or application/*+json, in UTF-8 (the only encoding JSON has, RFC 8259)."""
    if not content_type:
        return False
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    if not (media == "application/json" or (media.startswith("application/") and media.endswith("+json"))):
        return False
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return True


class JsonRoute(APIRoute):
    """A route whose body is parsed as strict JSON: lenient JSON is a 400 (the media type is the edge's)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict_handler
