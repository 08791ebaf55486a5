"""The HTTP entrypoint: builds the app from Settings and wires the ports to their adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from app.api import events, export, operations
from app.api.compat import posthog as posthog_compat
from app.api.compat import segment as segment_compat
from app.api.docs import install_offline_docs
from app.api.guards import event_limits, install_guards
from app.api.middleware import RequestContextMiddleware
from app.api.problems import install_problem_handlers
from app.config import Settings
from app.logging_config import LineLog, configure_logging, get_logger
from app.observability.gc_tuning import freeze_startup_heap
from app.observability.metrics import PrometheusMetrics
from app.observability.tracing import install_tracing
from app.repository import open_repository
from app.repository.group_commit import GroupCommitWriter
from app.repository.writer_client import WriterClient
from app.services.event_service import EventService

_NO_FRAMEWORK_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level)
    log = get_logger("telemetry")
    line_log = LineLog(settings.log_level)  # the lines of every request and every event: same shape, cheaper
    metrics = PrometheusMetrics(
        label_max_values=settings.metrics_label_max_values,
        allowed_actions=settings.metrics_allowed_actions,
        allowed_sources=settings.metrics_allowed_sources,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        repository = open_repository(
            settings.database_url,
            synchronous=settings.sqlite_synchronous,
            busy_timeout_ms=settings.sqlite_busy_timeout_ms,
            postgres_pool_max_size=settings.postgres_pool_max_size,
            postgres_acquire_timeout_s=settings.postgres_acquire_timeout_s,
        )
        writer: GroupCommitWriter | WriterClient
        if settings.writer_socket:
            # `serve` runs one writer process for every worker; this process sends it rows.
            writer = WriterClient(Path(settings.writer_socket), metrics, capacity=settings.write_queue_max)
        else:
            writer = GroupCommitWriter(
                repository, metrics, max_queue=settings.write_queue_max, max_batch=settings.commit_batch_max
            )
        app.state.writer = writer
        app.state.service = EventService(writer, repository, metrics, line_log, limits=event_limits(settings))
        log.info("service_started", database=settings.database_url.split("://", 1)[0])
        freeze_startup_heap()
        try:
            yield
        finally:
            if isinstance(writer, WriterClient):
                drained = await writer.aclose(settings.shutdown_timeout_s)
            else:
                drained = writer.close(settings.shutdown_timeout_s)
            repository.close()
            log.info("service_stopped", drained=drained)

    app = FastAPI(
        title="Telemetry Mini Service",
        version="0.1.0",
        summary="Every user action recorded as an immutable event: observable and analysable.",
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry checks the global providers on every request; ours is off unless enabled.
        telemetry=None if settings.tracing_enabled else _NO_FRAMEWORK_TELEMETRY,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    install_problem_handlers(app)
    install_offline_docs(app)
    app.include_router(export.router)  # before events: /v1/events/export is not an /v1/events/{event_id}
    app.include_router(events.router)
    app.include_router(operations.router)
    app.include_router(segment_compat.router)
    app.include_router(posthog_compat.router)
    install_guards(app, settings, metrics, line_log)  # body limit, strict JSON, keys, rate limit, CORS
    app.add_middleware(RequestContextMiddleware, metrics=metrics, log=line_log)
    install_tracing(app, settings, metrics)  # outermost middleware: its span encloses the request's logs
    return app


app = create_app()
