"""Optional OpenTelemetry tracing: off by default (TELEMETRY_TRACING_ENABLED), configured by the standard
OTEL_* variables (OTEL_SERVICE_NAME, OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_SAMPLER, ...).

When on, each HTTP request is a server span (continuing an incoming W3C traceparent), its trace_id and
span_id are bound to every log line the request causes, and sampled requests leave them as an exemplar on
the latency histogram. When off, nothing is installed and opentelemetry is not even imported.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.metrics import UNMATCHED_ROUTE

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from app.config import Settings
    from app.main import ServiceApp
    from app.observability.metrics import PrometheusMetrics


def install_tracing(app: ServiceApp, settings: Settings, metrics: PrometheusMetrics) -> None:
    """Call after the edge is in place: the request span is in front of it and encloses its work and logs."""
    if not settings.tracing_enabled:
        return
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

    provider = TracerProvider()  # resource and sampler from OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER, ...
    if settings.otel_traces_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # OTEL_EXPORTER_OTLP_* endpoint
    elif settings.otel_traces_exporter == "console":
        # stderr: stdout carries one JSON log object a line and must stay parseable
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
    metrics.exemplar = current_exemplar
    tracer = provider.get_tracer("app.http")
    app.add_front(lambda inner: TracingMiddleware(inner, tracer=tracer))
    trace.set_tracer_provider(provider)


def current_exemplar() -> dict[str, str] | None:
    """The current span's ids, for a sampled span only: an exemplar must lead to a trace that was kept."""
    from opentelemetry import trace
    from opentelemetry.trace import format_span_id, format_trace_id

    context = trace.get_current_span().get_span_context()
    if not (context.is_valid and context.trace_flags.sampled):
        return None
    return {"trace_id": format_trace_id(context.trace_id), "span_id": format_span_id(context.span_id)}


class TracingMiddleware:
    """One SERVER span per HTTP request; trace_id and span_id bound to the request's log lines."""

    def __init__(self, app: ASGIApp, tracer: Tracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind, StatusCode, format_span_id, format_trace_id

        carrier = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        method = scope["method"]
        status = 500

        async def send_capturing_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with self.tracer.start_as_current_span(
            method, context=propagate.extract(carrier), kind=SpanKind.SERVER, record_exception=True
        ) as span:
            ids = span.get_span_context()
            structlog.contextvars.bind_contextvars(
                trace_id=format_trace_id(ids.trace_id), span_id=format_span_id(ids.span_id)
            )
            try:
                await self.app(scope, receive, send_capturing_status)
            finally:
                route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)  # set by the router on a match
                span.update_name(f"{method} {route}")
                attributes: dict[str, Any] = {
                    "http.request.method": method,
                    "http.route": route,
                    "http.response.status_code": status,
                    "url.path": scope["path"],
                }
                span.set_attributes(attributes)
                if status >= 500:
                    span.set_status(StatusCode.ERROR)
                structlog.contextvars.unbind_contextvars("trace_id", "span_id")
