"""Per-request context: X-Request-ID, one access log line, and the HTTP metrics.

A plain ASGI middleware (not BaseHTTPMiddleware): it adds no task or stream copy to each request.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from typing import Any

import structlog
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.logs import defer_log_flush, end_log_deferral
from app.observability.metrics import OTHER, UNMATCHED_ROUTE, PrometheusMetrics

_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# A client's request id is echoed and logged, so it must be short and plain.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# Generated ids: a random per-process prefix and a counter; unique without a urandom call per request.
_ID_PREFIX = os.urandom(8).hex()
_id_counter = itertools.count(1)


_CONVERTOR = re.compile(r"\{(\w+):\w+\}")


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    # "/v1/events/{event_id:uuid}" is labelled "/v1/events/{event_id}", as the OpenAPI schema names it.
    return _CONVERTOR.sub(r"{\1}", path) if isinstance(path, str) else UNMATCHED_ROUTE


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: PrometheusMetrics, log: Any) -> None:
        self.app = app
        self.metrics = metrics
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _incoming_request_id(scope) or f"{_ID_PREFIX}{next(_id_counter):08x}"
        structlog.contextvars.bind_contextvars(request_id=request_id)
        deferral = defer_log_flush()
        status = 500
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            duration = time.perf_counter() - started
            method = scope["method"] if scope["method"] in _KNOWN_METHODS else OTHER
            route = route_template(scope)
            self.metrics.http_request(method, route, status, duration)
            self.log.info(
                "http_request",
                method=method,
                route=route,
                status=status,
                duration_ms=round(duration * 1000, 3),
            )
            structlog.contextvars.unbind_contextvars("request_id")
            end_log_deferral(deferral)


def _incoming_request_id(scope: Scope) -> str | None:
    text = Headers(scope=scope).get("x-request-id")
    return text if text is not None and _REQUEST_ID.match(text) else None
