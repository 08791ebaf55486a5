"""The HTTP entrypoint: builds the app from Settings and wires the ports to their adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api import erasures, events, export, operations
from app.api.compat import posthog as posthog_compat
from app.api.compat import segment as segment_compat
from app.api.compat.inflate import BodyDecoder
from app.api.docs import install_offline_docs
from app.api.guards import event_limits, install_guards
from app.api.middleware import RequestContextMiddleware
from app.api.problems import install_problem_handlers
from app.config import Settings
from app.logging_config import configure_logging, get_logger
from app.observability.metrics import PrometheusMetrics
from app.observability.tracing import install_tracing
from app.repository import open_repository
from app.repository.group_commit import GroupCommitWriter
from app.services.erasure import Suppressions
from app.services.event_service import EventService
from app.services.retention import LifecycleTask, Retention


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level)
    log = get_logger("telemetry")
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
        writer = GroupCommitWriter(
            repository, metrics, max_queue=settings.write_queue_max, max_batch=settings.commit_batch_max
        )
        suppressions = Suppressions(repository.suppressed_users)
        suppressions.refresh()
        retention = None
        if settings.retention_days is not None:
            days, chunk = settings.retention_days, settings.retention_chunk_rows
            retention = Retention(repository, days, metrics, chunk_rows=chunk)
        lifecycle = LifecycleTask(
            retention, settings.retention_interval_s, suppressions.refresh, settings.suppression_refresh_s, log
        )
        app.state.writer = writer
        app.state.repository = repository
        app.state.suppressions = suppressions
        # One per process: the memory budget is shared by every connection.
        body_decoder = BodyDecoder(settings.sdk_decode_budget_bytes)
        app.state.body_decoder = body_decoder
        app.state.service = EventService(
            writer, repository, metrics, log, limits=event_limits(settings), suppressions=suppressions
        )
        log.info("service_started", database=settings.database_url.split("://", 1)[0])
        try:
            yield
        finally:
            lifecycle.close()
            body_decoder.close()
            drained = writer.close(settings.shutdown_timeout_s)
            repository.close()
            log.info("service_stopped", drained=drained)

    app = FastAPI(
        title="Telemetry Mini Service",
        version="0.1.0",
        summary="Every user action recorded as an immutable event: observable and analysable.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.log = log
    install_problem_handlers(app)
    install_offline_docs(app)
    app.include_router(export.router)  # before events: /v1/events/export is not an /v1/events/{event_id}
    app.include_router(events.router)
    app.include_router(operations.router)
    app.include_router(erasures.router)
    app.include_router(segment_compat.router)
    app.include_router(posthog_compat.router)
    install_guards(app, settings, metrics, log)  # body limit, strict JSON, keys, rate limit, CORS
    app.add_middleware(RequestContextMiddleware, metrics=metrics, log=log)
    install_tracing(app, settings, metrics)  # outermost middleware: its span encloses the request's logs
    return app


app = create_app()
