"""Per-request context, which the edge (edge.py) opens and closes around every HTTP request: the
X-Request-ID (the client's, when it is short and plain, else a new one), one access log line, and the
HTTP metrics. Not a middleware of its own: one ASGI layer (the edge) does this and the routes' policies.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from contextvars import Token
from typing import Any

import structlog
from starlette.types import Scope

from app.observability.logs import defer_log_flush, end_log_deferral
from app.observability.metrics import OTHER, UNMATCHED_ROUTE, PrometheusMetrics

_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# A client's request id is echoed and logged, so it must be short and plain.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# Generated ids: a random per-process prefix and a counter; unique without a urandom call per request.
_ID_PREFIX = os.urandom(8).hex()
_id_counter = itertools.count(1)


_CONVERTOR = re.compile(r"\{(\w+):\w+\}")
_templates: dict[str, str] = {}  # a route's path -> its label: a bounded set, the app's routes


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return UNMATCHED_ROUTE
    label = _templates.get(path)
    if label is None:
        # "/v1/events/{event_id:uuid}" is labelled "/v1/events/{event_id}", as the OpenAPI schema names it.
        label = _templates[path] = _CONVERTOR.sub(r"{\1}", path)
    return label


class RequestHeaders:
    """The request's headers as the edge reads them: a dict built in one pass over the list, where Starlette's
    Headers scans the whole list at each lookup. Names are looked up lower-case (as ASGI servers give them);
    of a repeated header, the first is the one read, as Headers.get reads it."""

    __slots__ = ("_values",)

    def __init__(self, scope: Scope) -> None:
        values: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            values.setdefault(name, value)
        self._values = values

    def get(self, name: str) -> str | None:
        value = self._values.get(name.encode("latin-1"))
        return None if value is None else value.decode("latin-1")

    def __contains__(self, name: str) -> bool:
        return name.encode("latin-1") in self._values


class RequestContext:
    """What the edge does for every request before and after the route: `begin` names the request (the id
    is bound to every log line it causes, and those lines are held until it ends); `end` counts it in
    the HTTP metrics, writes its access line and lets its log lines go."""

    __slots__ = ("log", "metrics")

    def __init__(self, metrics: PrometheusMetrics, log: Any) -> None:
        self.metrics = metrics
        self.log = log

    def begin(self, headers: RequestHeaders) -> tuple[bytes, Token[bool]]:
        """The request id as a header value, and the token that ends the log deferral."""
        request_id = _incoming_request_id(headers) or f"{_ID_PREFIX}{next(_id_counter):08x}"
        structlog.contextvars.bind_contextvars(request_id=request_id)
        return request_id.encode(), defer_log_flush()

    def end(self, scope: Scope, status: int, started: float, deferral: Token[bool]) -> None:
        duration = time.perf_counter() - started
        method = scope["method"] if scope["method"] in _KNOWN_METHODS else OTHER
        route = route_template(scope)
        self.metrics.http_request(method, route, status, duration)
        self.log.info("http_request", method=method, route=route, status=status, duration_ms=round(duration * 1000, 3))
        structlog.contextvars.unbind_contextvars("request_id")
        end_log_deferral(deferral)


def _incoming_request_id(headers: RequestHeaders) -> str | None:
    text = headers.get("x-request-id")
    return text if text is not None and _REQUEST_ID.match(text) else None
