"""Request bodies parsed with orjson: FastAPI's documented way (a custom Request and APIRoute class).

Starlette parses JSON bodies with the standard library; on a batch of 100 events that was a visible share of
the ingest profile. orjson's errors subclass json.JSONDecodeError, so malformed JSON still becomes FastAPI's
`json_invalid` (our 400); where orjson is stricter than JSON itself (integers past 64 bits) the standard
library takes over (app.json_codec.load_json).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from app.json_codec import load_json


class OrjsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = load_json(await self.body())
        return self._json


class OrjsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def with_orjson(request: Request) -> Response:
            return await handler(OrjsonRequest(request.scope, request.receive))

        return with_orjson
