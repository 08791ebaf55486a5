"""The HTTP entrypoint: builds the app from Settings and wires the ports to their adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api import events, export, operations
from app.api.compat import posthog as posthog_compat
from app.api.compat import segment as segment_compat
from app.api.docs import install_offline_docs
from app.api.guards import event_limits, install_guards
from app.api.middleware import RequestContextMiddleware
from app.api.problems import install_problem_handlers
from app.api.read_capacity import ReadCapacity
from app.config import Settings
from app.logging_config import configure_logging, get_logger
from app.observability.metrics import PrometheusMetrics
from app.observability.tracing import install_tracing
from app.repository import open_repository
from app.repository.events_repository import SqliteEventRepository
from app.repository.group_commit import GroupCommitWriter
from app.repository.sqlite_wal import WalBound
from app.services.event_service import EventService


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
            wal_size_limit=settings.sqlite_wal_checkpoint_bytes or None,
            postgres_pool_max_size=settings.postgres_pool_max_size,
            postgres_acquire_timeout_s=settings.postgres_acquire_timeout_s,
        )
        between_commits = None
        if isinstance(repository, SqliteEventRepository):
            metrics.wal_limit(settings.sqlite_wal_max_bytes)
            between_commits = WalBound(
                repository.path,
                repository.checkpoint,
                metrics,
                checkpoint_bytes=settings.sqlite_wal_checkpoint_bytes,
                max_bytes=settings.sqlite_wal_max_bytes,
            )
        writer = GroupCommitWriter(
            repository,
            metrics,
            max_queue=settings.write_queue_max,
            max_batch=settings.commit_batch_max,
            between_commits=between_commits,
        )
        app.state.writer = writer
        app.state.service = EventService(writer, repository, metrics, log, limits=event_limits(settings))
        log.info("service_started", database=settings.database_url.split("://", 1)[0])
        try:
            yield
        finally:
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
    app.state.reads = ReadCapacity(
        concurrency=settings.read_concurrency, queue_max=settings.read_queue_max, wait_s=settings.read_queue_wait_s
    )
    app.state.metrics = metrics
    install_problem_handlers(app)
    install_offline_docs(app)
    app.include_router(export.router)  # before events: /v1/events/export is not an /v1/events/{event_id}
    app.include_router(events.router)
    app.include_router(operations.router)
    app.include_router(segment_compat.router)
    app.include_router(posthog_compat.router)
    install_guards(app, settings, metrics, log)  # body limit, strict JSON, keys, rate limit, CORS
    app.add_middleware(RequestContextMiddleware, metrics=metrics, log=log)
    install_tracing(app, settings, metrics)  # outermost middleware: its span encloses the request's logs
    return app


app = create_app()
