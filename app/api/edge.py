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

Around all of it, the request's context (middleware.py): its X-Request-ID, its access log line and its HTTP
metrics. One layer does both, so a request crosses one coroutine frame and one send wrapper of ours, and a
lean route's body is read here without the wrapped receive a route reading its own body needs.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.access import AccessGuard
from app.api.compat.keys import key_before_body, sdk_refusal
from app.api.middleware import RequestContext, RequestHeaders
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


class StallClock:
    """Refuses a body read that waits longer than timeout_s for its next chunk (the edge answers 408).

    One timer a loop looks at every read in progress a few times per timeout and cancels the stalled ones;
    asyncio.timeout would arm and cancel a timer for every chunk of every request (~10 µs a request on the
    benchmark machine, where a bare FastAPI request costs ~200 µs of CPU). A stalled read is refused between
    timeout_s and timeout_s + tick after it began, tick being a quarter of timeout_s and at most 0.25 s.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.tick = min(timeout_s / 4, 0.25)
        self._waiting: dict[asyncio.Task[Any], float] = {}  # each read in progress: its task, its deadline
        self._expired: set[asyncio.Task[Any]] = set()
        self._timer: tuple[asyncio.AbstractEventLoop, asyncio.TimerHandle] | None = None

    async def receive(self, receive: Receive) -> Message:
        """receive(), or _BodyRefused once it has waited timeout_s."""
        task = asyncio.current_task()
        assert task is not None
        loop = task.get_loop()
        self._waiting[task] = loop.time() + self.timeout_s
        timer = self._timer
        if timer is None or timer[0] is not loop:  # none armed, or armed on a loop that has since ended
            self._timer = (loop, loop.call_later(self.tick, self._check))
        try:
            return await receive()
        except asyncio.CancelledError:
            if task not in self._expired:
                raise
            self._expired.discard(task)
            task.uncancel()  # our cancellation, not the task's: it goes on to answer 408
            raise _BodyRefused(RejectionReason.BODY_TIMEOUT) from None
        finally:
            self._waiting.pop(task, None)

    def _check(self) -> None:
        assert self._timer is not None
        loop = self._timer[0]
        self._timer = None
        now = loop.time()
        for task, deadline in list(self._waiting.items()):
            if deadline <= now and task.get_loop() is loop:
                del self._waiting[task]
                self._expired.add(task)
                task.cancel()
        if self._waiting:
            self._timer = (loop, loop.call_later(self.tick, self._check))


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
        context: RequestContext | None = None,  # request id, access line and HTTP metrics; None: none kept
    ) -> None:
        self.app = app
        self.runtime = runtime if settings.lean_ingest else None
        self.settings = settings
        self.timeout_s = settings.request_body_timeout_s
        self.clock = StallClock(settings.request_body_timeout_s)
        self.origins = frozenset(settings.cors_origins)
        self.rejections = rejections
        self.access = access
        self.table = PolicyTable(routes)
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = RequestHeaders(scope)
        context = self.context
        if context is None:
            await self._route(scope, receive, send, headers)
            return
        started = time.perf_counter()
        request_id, deferral = context.begin(headers)
        header = (b"x-request-id", request_id)
        status = 500  # unless a response starts: what the server answers when the app raises

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            await self._route(scope, receive, send_with_id, headers)
        finally:
            context.end(scope, status, started, deferral)

    async def _route(self, scope: Scope, receive: Receive, send: Send, headers: RequestHeaders) -> None:
        method = scope["method"]
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
        limit = matched.policy.max_body_bytes(self.settings)
        declared = _content_length(headers)
        if declared is not None and declared > limit:
            await self._refuse_body(RejectionReason.BODY_TOO_LARGE, scope, receive, send, limit)
        elif matched.policy.lean is not None and self.runtime is not None and method == "POST":
            await self._lean(scope, receive, send, headers, matched, limit)
        else:
            await self._limited(scope, receive, send, headers, matched, limit)

    async def _lean(
        self, scope: Scope, receive: Receive, send: Send, headers: RequestHeaders, matched: _Matched, limit: int
    ) -> None:
        """A route with a lean handler: its policy, its body read here (limit and clock), its handler's answer."""
        policy = matched.policy
        scope["route"] = matched.route  # answered for that route: labelled with it in the metrics
        problem = self._checks(scope, headers, policy)
        if problem is not None:
            await api_problem_response(problem)(scope, receive, send)
            return
        try:
            body = await self._read_body(receive, limit)
        except _BodyRefused as refused:
            await self._refuse_body(refused.args[0], scope, receive, send, limit)
            return
        except ClientDisconnect:
            # What the route answers when its body cannot be read (nobody reads it: the client is gone).
            await problem_response(400, "There was an error parsing the body")(scope, receive, send)
            return
        assert self.runtime is not None  # _route sends only lean routes here, and only with a runtime
        assert policy.lean is not None
        response = await policy.lean(self.runtime, body)
        await response(scope, receive, send)

    async def _read_body(self, receive: Receive, limit: int) -> bytes:
        """The whole body; _BodyRefused past `limit` bytes (one chunk past it at most) or once it stalls."""
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await self.clock.receive(receive)
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > limit:
                    raise _BodyRefused(RejectionReason.BODY_TOO_LARGE)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
            elif message["type"] == "http.disconnect":
                raise ClientDisconnect

    async def _limited(
        self, scope: Scope, receive: Receive, send: Send, headers: RequestHeaders, matched: _Matched, limit: int
    ) -> None:
        """A route that reads its own body: it reads it through a receive() that keeps the limit and the clock."""
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
                message = await self.clock.receive(receive)
            except _BodyRefused:
                refused = RejectionReason.BODY_TIMEOUT
                raise
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
            problem = self._checks(scope, headers, matched.policy)
            if problem is not None:
                scope["route"] = matched.route  # answered for that route: labelled with it in the metrics
                await api_problem_response(problem)(scope, limited_receive, guarded_send)
            else:
                await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not refused:
                raise
        if refused and not response_started:
            await self._refuse_body(refused, scope, receive, send, limit)

    def _checks(self, scope: Scope, headers: RequestHeaders, policy: RoutePolicy) -> ApiProblem | None:
        """The key and the media type, checked before the route reads the body: the problem, or None."""
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
            return exc
        return None

    def _authorize(self, scope: Scope, headers: RequestHeaders, policy: RoutePolicy) -> None:
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


def _content_length(headers: RequestHeaders) -> int | None:
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
