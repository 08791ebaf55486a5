"""CORS for browser senders, on the ingest routes only: POST, no credentials.

Starlette's CORSMiddleware applies to every path; this one answers only for the paths it is given (the
POST ingest routes), so a browser page can send events but never read them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALLOWED_HEADERS = "authorization, content-type, x-request-id"
EXPOSED_HEADERS = "x-request-id, retry-after"
MAX_AGE_S = "600"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class IngestCorsMiddleware:
    def __init__(self, app: ASGIApp, *, origins: Iterable[str], paths: Callable[[], Iterable[str]]) -> None:
        self.app = app
        self.origins = frozenset(origins)
        self._find_paths = paths
        self._paths: frozenset[str] | None = None

    @property
    def paths(self) -> frozenset[str]:
        # Found on the first request, when every router has been included.
        if self._paths is None:
            self._paths = frozenset(self._find_paths())
        return self._paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "OPTIONS") or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        allowed = origin is not None and origin in self.origins
        preflight = scope["method"] == "OPTIONS" and _header(scope, b"access-control-request-method") is not None
        if preflight and allowed and _header(scope, b"access-control-request-method") == "POST":
            await self._preflight(send, str(origin))
            return
        if preflight or scope["method"] != "POST" or not allowed:
            # No CORS headers: the browser refuses (a refused preflight gets the route's 405).
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"access-control-allow-origin", str(origin).encode("latin-1")),
                    (b"access-control-expose-headers", EXPOSED_HEADERS.encode()),
                    (b"vary", b"Origin"),
                ]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, send: Send, origin: str) -> None:
        headers = [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-methods", b"POST"),
            (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
            (b"access-control-max-age", MAX_AGE_S.encode()),
            (b"vary", b"Origin"),
            (b"content-length", b"0"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
