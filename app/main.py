"""The HTTP entrypoint: the FastAPI app over a Runtime built by app.bootstrap."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api import erasures, events, export, live_page, operations
from app.api.compat import posthog as posthog_compat
from app.api.compat import segment as segment_compat
from app.api.deps import attach_runtime
from app.api.docs import install_offline_docs, limits_description
from app.api.edge import EdgeMiddleware
from app.api.middleware import RequestContext
from app.api.problems import install_problem_handlers
from app.bootstrap import Runtime, build_runtime
from app.config import Settings
from app.observability.gc_tuning import freeze_startup_heap
from app.observability.tracing import install_tracing

_NO_FRAMEWORK_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


class ServiceApp(FastAPI):
    """FastAPI with the service's own ASGI layers (the edge, tracing) in front of it rather than inside its
    middleware stack: a request the edge answers itself (a refusal, a lean ingest route) never enters the
    framework (FastAPI and Starlette's __call__, ServerErrorMiddleware, the exception layers)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._front: ASGIApp = super().__call__

    def add_front(self, layer: Callable[[ASGIApp], ASGIApp]) -> None:
        """Put an ASGI layer in front of the app and the layers added before it: the last added is the outermost."""
        self._front = layer(self._front)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._front(scope, receive, send)


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> ServiceApp:
    """The app for a runtime (built from `settings`, or from the environment, when not given)."""
    runtime = runtime or build_runtime(settings)
    settings = runtime.settings
    log = runtime.log

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        log.info("service_started", database=settings.database_url.split("://", 1)[0])
        freeze_startup_heap()
        try:
            yield
        finally:
            drained = await runtime.stop_serving()
            log.info("service_stopped", drained=drained)

    app = ServiceApp(
        title="Telemetry Mini Service",
        version="0.1.0",
        summary="Every user action recorded as an immutable event: observable and analysable.",
        description=limits_description(settings),
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry checks the global providers on every request; ours is off unless enabled.
        telemetry=None if settings.tracing_enabled else _NO_FRAMEWORK_TELEMETRY,
    )
    attach_runtime(app, runtime)
    install_problem_handlers(app, runtime.rejections)
    install_offline_docs(app)
    app.include_router(export.router)  # before events: /v1/events/export is not an /v1/events/{event_id}
    app.include_router(events.router)
    app.include_router(operations.router)
    app.include_router(erasures.router)
    app.include_router(live_page.router)
    app.include_router(segment_compat.router)
    app.include_router(posthog_compat.router)
    if runtime.access.keyring.open:
        log.warning("access_open", detail="no API key configured (TELEMETRY_API_KEYS): anyone may send and read")
    # The request's context (id, access line, HTTP metrics) and each route's RoutePolicy (CORS, body limit,
    # key and scope, media type) before the route reads its body: one ASGI layer.
    app.add_front(
        lambda framework: EdgeMiddleware(
            framework,
            settings=settings,
            rejections=runtime.rejections,
            access=runtime.access,
            routes=lambda: app.routes,
            runtime=runtime,
            context=RequestContext(runtime.metrics, runtime.line_log),
        )
    )
    install_tracing(app, settings, runtime.metrics)  # in front of the edge: its span encloses the request's logs
    return app


app = create_app()
