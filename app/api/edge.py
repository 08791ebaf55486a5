"""The edge: one plain ASGI layer that applies each route's RoutePolicy (policy.py) to a request.

In this order, before the route reads a byte of the body:
- CORS, for the routes open to browsers: a preflight is answered here; a POST from an allowed origin gets
  the CORS headers on whatever it is answered (a 413 or 401 included), so the page can read the problem;
- the body limit: a Content-Length over the route's limit is a 413 at once; a streamed body is counted
  as it arrives (413 one chunk past the limit) and a stalled one is a 408 after request_body_timeout_s;
- the API key and scope (bearer), for routes that do not take their key from the body: 401/403/429;
- the media type: a route taking a JSON body answers 415 to anything else.

Then the route answers: through FastAPI, or, for a route whose policy names a lean handler (the JSON ingest
routes, with lean_ingest on), through that handler on the body read here (lean_ingest.py).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from fastapi.routing import iter_route_contexts
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.access import AccessGuard
from app.api.compat.keys import key_before_body, sdk_refusal
from app.api.policy import OPEN, RoutePolicy, policy_of
from app.api.problems import ApiProblem, api_problem_response, problem_response
from app.api.security import bearer_from
from app.api.strict_json import is_json_media_type
from app.bootstrap import Runtime
from app.config import Settings
from app.services.rejections import RejectionReason, Rejections

CORS_ALLOWED_HEADERS = "authorization, content-type, x-request-id"
CORS_EXPOSED_HEADERS = "x-request-id, retry-after"
CORS_MAX_AGE_S = "600"


class _BodyRefused(Exception):
    """Raised into the app from receive() once the body is refused; the edge answers instead."""


@dataclass(frozen=True, slots=True)
class _Matched:
    policy: RoutePolicy
    route: BaseRoute | None


_UNMATCHED = _Matched(OPEN, None)


class PolicyTable:
    """The policy of the route a request is for. Paths without parameters (every ingest route) are one
    dict lookup; the others are matched on their path pattern. Built on first use, when every router
    has been included."""

    def __init__(self, routes: Callable[[], Iterable[BaseRoute]]) -> None:
        self._routes = routes
        self._static: dict[tuple[str, str], _Matched] | None = None
        self._dynamic: list[tuple[re.Pattern[str], frozenset[str], _Matched]] = []

    def _build(self) -> dict[tuple[str, str], _Matched]:
        static: dict[tuple[str, str], _Matched] = {}
        # Route contexts: routes of included routers as the app serves them (prefix and dependencies applied).
        for context in iter_route_contexts(list(self._routes())):
            matched = _Matched(policy_of(context), context.original_route)
            path, methods = context.path_format, context.methods or set()
            if isinstance(path, str) and "{" not in path:
                for method in methods:
                    static.setdefault((method, path), matched)
            elif matched.policy is not OPEN:
                self._dynamic.append((context.path_regex, frozenset(methods), matched))
        return static

    def lookup(self, scope: Scope, method: str) -> _Matched:
        static = self._static
        if static is None:
            static = self._static = self._build()
        path = scope["path"]
        found = static.get((method, path))
        if found is not None:
            return found
        for regex, methods, matched in self._dynamic:
            if method in methods and regex.match(path):
                return matched
        return _UNMATCHED


class EdgeMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings,
        rejections: Rejections,
        access: AccessGuard,
        routes: Callable[[], Sequence[BaseRoute]],
        runtime: Runtime | None = None,  # for the routes' lean handlers; None: every route through the app
    ) -> None:
        self.app = app
        self.runtime = runtime if settings.lean_ingest else None
        self.settings = settings
        self.timeout_s = settings.request_body_timeout_s
        self.origins = frozenset(settings.cors_origins)
        self.rejections = rejections
        self.access = access
        self.table = PolicyTable(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        headers = Headers(scope=scope)
        matched = self.table.lookup(scope, method)
        # A preflight asks about the POST route on its path.
        cors = (self.table.lookup(scope, "POST") if method == "OPTIONS" else matched).policy.cors
        if cors and self.origins and method in ("POST", "OPTIONS"):
            origin = headers.get("origin")
            allowed = origin is not None and origin in self.origins
            preflight = method == "OPTIONS" and "access-control-request-method" in headers
            if preflight and allowed and headers.get("access-control-request-method") == "POST":
                await _preflight(send, str(origin))
                return
            if allowed and method == "POST":
                send = _with_cors(send, str(origin))
            # Otherwise no CORS headers: the browser refuses (a refused preflight gets the route's 405).
        await self._limited(scope, receive, send, headers, matched)

    async def _limited(self, scope: Scope, receive: Receive, send: Send, headers: Headers, matched: _Matched) -> None:
        limit = matched.policy.max_body_bytes(self.settings)
        declared = _content_length(headers)
        if declared is not None and declared > limit:
            await self._refuse_body(RejectionReason.BODY_TOO_LARGE, scope, receive, send, limit)
            return

        received = 0
        body_done = False
        refused: RejectionReason | None = None
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, body_done, refused
            if refused:
                raise _BodyRefused(refused)
            if body_done:  # after the body, receive() only waits for a disconnect: no clock on that
                return await receive()
            try:
                # asyncio.timeout, not wait_for: no extra task per body chunk.
                async with asyncio.timeout(self.timeout_s):
                    message = await receive()
            except TimeoutError:
                refused = RejectionReason.BODY_TIMEOUT
                raise _BodyRefused(refused) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = RejectionReason.BODY_TOO_LARGE
                    raise _BodyRefused(refused)
                body_done = not message.get("more_body", False)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if refused and not response_started:
                return  # whatever the app answers to a body it did not get whole, ours replaces it
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self._checked(scope, limited_receive, guarded_send, headers, matched)
        except Exception:
            if not refused:
                raise
        if refused and not response_started:
            await self._refuse_body(refused, scope, receive, send, limit)

    async def _checked(self, scope: Scope, receive: Receive, send: Send, headers: Headers, matched: _Matched) -> None:
        """The key and the media type, checked before the route reads the body."""
        policy = matched.policy
        try:
            if policy.scope is not None:
                self._authorize(scope, headers, policy)
            if policy.json_body and scope["method"] == "POST" and not is_json_media_type(headers.get("content-type")):
                self.rejections(RejectionReason.UNSUPPORTED_MEDIA_TYPE)
                raise ApiProblem(
                    415,
                    "unsupported-media-type",
                    "Send the body as JSON with Content-Type: application/json (UTF-8).",
                    headers={"Accept-Post": "application/json"},
                )
        except ApiProblem as exc:
            scope["route"] = matched.route  # answered for that route: labelled with it in the metrics
            await api_problem_response(exc)(scope, receive, send)
            return
        if policy.lean is not None and self.runtime is not None and scope["method"] == "POST":
            scope["route"] = matched.route
            try:
                body = await _whole_body(receive)
            except ClientDisconnect:
                # What the route answers when its body cannot be read (nobody reads it: the client is gone).
                await problem_response(400, "There was an error parsing the body")(scope, receive, send)
                return
            response = await policy.lean(self.runtime, body)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _authorize(self, scope: Scope, headers: Headers, policy: RoutePolicy) -> None:
        """The bearer key of a route, or, for a route that takes its key from the body, a key found before the
        body (checked now, so a wrong one costs no body read; without one the route reads the body's)."""
        assert policy.scope is not None
        client = scope.get("client")
        address = client[0] if client else "unknown"
        authorization = headers.get("authorization")
        if not policy.key_in_body:
            api_key = self.access.authorize(bearer_from(authorization), policy.scope, address)
        else:
            presented = key_before_body(authorization, scope.get("query_string", b""), policy.query_key)
            if presented is None:
                return
            try:
                api_key = self.access.authorize(presented, policy.scope, address)
            except ApiProblem as exc:
                raise sdk_refusal(exc) from exc
        scope.setdefault("state", {})["api_key"] = api_key

    async def _refuse_body(
        self, reason: RejectionReason, scope: Scope, receive: Receive, send: Send, limit: int
    ) -> None:
        self.rejections(reason)
        if reason is RejectionReason.BODY_TOO_LARGE:
            response = problem_response(413, f"The request body is over {limit} bytes.", slug="body-too-large")
        else:
            # The connection is in an unknown state (part of a body is in flight): close it after answering.
            response = problem_response(
                408,
                f"The request body stalled for {self.timeout_s:g} s.",
                slug="body-timeout",
                headers={"Connection": "close"},
            )
        await response(scope, receive, send)


async def _whole_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect


def _content_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _with_cors(send: Send, origin: str) -> Send:
    async def send_with_cors(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [
                *message.get("headers", []),
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-expose-headers", CORS_EXPOSED_HEADERS.encode()),
                (b"vary", b"Origin"),
            ]
        await send(message)

    return send_with_cors


async def _preflight(send: Send, origin: str) -> None:
    headers = [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-allow-methods", b"POST"),
        (b"access-control-allow-headers", CORS_ALLOWED_HEADERS.encode()),
        (b"access-control-max-age", CORS_MAX_AGE_S.encode()),
        (b"vary", b"Origin"),
        (b"content-length", b"0"),
    ]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
