"""Wiring: Settings -> one typed Runtime that create_app, the CLI commands and the tests all build from.

The runtime has two parts. What a process needs before it serves (metrics, logger, rejections, access
guard) is built at once; the storage (repository, group-commit writer, service, SDK body decoder) is
opened by `start()`,
which the app's lifespan calls in each worker process, and closed by `stop()`. A test passes its own
`open_repository` (an in-memory fake, a prepared file) to run the same wiring on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from app.api.access import AccessGuard, KeyRing, TokenBucketLimiter
from app.api.compat.inflate import BodyDecoder
from app.api.read_capacity import ReadCapacity
from app.config import Settings
from app.observability.logs import LineLog, configure_logging, get_logger
from app.observability.metrics import PrometheusMetrics
from app.repository import open_repository
from app.repository.group_commit import EventWriter, GroupCommitWriter, Item, Result, Store, WriterMetrics
from app.repository.port import EventRepository
from app.repository.sqlite import SqliteEventRepository
from app.repository.sqlite_wal import WalBound, WalMetrics
from app.repository.writer_client import WriterClient
from app.services.erasure import Suppressions
from app.services.event_limits import EventLimits
from app.services.event_service import EventService
from app.services.rejections import Rejections
from app.services.retention import LifecycleTask, Retention


class RuntimeNotStarted(RuntimeError):
    """The storage is opened by Runtime.start() (the app's lifespan); it was asked for before that."""


def open_store(settings: Settings) -> EventRepository:
    """The repository Settings name, with the storage settings applied."""
    return open_repository(
        settings.database_url,
        synchronous=settings.sqlite_synchronous,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        wal_size_limit=settings.sqlite_wal_checkpoint_bytes or None,
        postgres_pool_max_size=settings.postgres_pool_max_size,
        postgres_acquire_timeout_s=settings.postgres_acquire_timeout_s,
        postgres_read_pool_max_size=settings.read_concurrency,
        read_statement_timeout_s=settings.read_statement_timeout_s or None,
        postgres_startup_timeout_s=settings.postgres_startup_timeout_s,
    )


def event_limits(settings: Settings) -> EventLimits:
    return EventLimits(
        max_event_bytes=settings.event_max_bytes,
        max_metadata_depth=settings.metadata_max_depth,
        max_metadata_keys=settings.metadata_max_keys,
        max_future=timedelta(seconds=settings.timestamp_max_future_s),
        earliest=settings.timestamp_min,
    )


def access_guard(settings: Settings, rejections: Rejections) -> AccessGuard:
    limiter = None
    if settings.rate_limit_per_s > 0:
        burst = settings.rate_limit_burst or max(1, round(2 * settings.rate_limit_per_s))
        limiter = TokenBucketLimiter(settings.rate_limit_per_s, burst)
    return AccessGuard(KeyRing(settings.api_keys), limiter, rejections)


def wal_bound(settings: Settings, repository: EventRepository, metrics: WalMetrics) -> WalBound | None:
    """SQLite's WAL is kept bounded by checkpoints the writer runs between its commits."""
    if not isinstance(repository, SqliteEventRepository):
        return None
    return WalBound(
        repository.path,
        repository.checkpoint,
        metrics,
        checkpoint_bytes=settings.sqlite_wal_checkpoint_bytes,
        max_bytes=settings.sqlite_wal_max_bytes,
    )


def group_commit_writer(
    settings: Settings, repository: Store[Item, Result], metrics: WriterMetrics, between_commits: WalBound | None
) -> GroupCommitWriter[Item, Result]:
    """The writer over a repository: in each process (thread), or in the writer process `serve` runs."""
    return GroupCommitWriter(
        repository,
        metrics,
        max_queue=settings.write_queue_max,
        max_batch=settings.commit_batch_max,
        between_commits=between_commits,
    )


@dataclass(frozen=True, slots=True)
class Storage:
    """What start() opens in each process: the store, its writer, the service, and the SDK body decoder."""

    repository: EventRepository
    writer: EventWriter | WriterClient  # WriterClient: `serve`'s writer process commits
    service: EventService
    body_decoder: BodyDecoder  # one per process: its memory budget is shared by every connection
    suppressions: Suppressions  # erased users whose later events are refused, refreshed by the lifecycle task
    lifecycle: LifecycleTask  # retention passes (when a period is set) and the suppression refresh


@dataclass(slots=True)
class Runtime:
    settings: Settings
    metrics: PrometheusMetrics
    log: Any  # a structlog logger: info/warning with key-value fields
    line_log: LineLog  # the same lines, cheaper: those written for every request and every event
    rejections: Rejections
    access: AccessGuard
    reads: ReadCapacity
    open_repository: Callable[[Settings], EventRepository] = open_store
    _storage: Storage | None = None

    def start(self) -> Storage:
        """Open the repository, start the writer thread (or connect to `serve`'s writer process), build the service."""
        if self._storage is not None:
            return self._storage
        settings = self.settings
        repository = self.open_repository(settings)
        writer: EventWriter | WriterClient
        self.metrics_wal_limit(repository)
        if settings.writer_socket:
            # The writer process bounds the WAL between its commits and reports its size and checkpoints.
            socket_path = Path(settings.writer_socket)
            capacity = settings.write_queue_max
            writer = WriterClient(socket_path, self.metrics, capacity=capacity, wal_metrics=self.metrics)
        else:
            bound = wal_bound(settings, repository, self.metrics)
            writer = group_commit_writer(settings, repository, self.metrics, bound)
        suppressions = Suppressions(repository.suppressed_users)
        suppressions.refresh()
        service = EventService(
            writer,
            repository,
            self.metrics,
            self.line_log,
            limits=event_limits(settings),
            rejections=self.rejections,
            suppressions=suppressions,
        )
        retention = None
        if settings.retention_days is not None:
            days, chunk = settings.retention_days, settings.retention_chunk_rows
            retention = Retention(repository, days, self.metrics, chunk_rows=chunk)
        lifecycle = LifecycleTask(
            retention, settings.retention_interval_s, suppressions.refresh, settings.suppression_refresh_s, self.log
        )
        decoder = BodyDecoder(settings.sdk_decode_budget_bytes)
        self._storage = Storage(repository, writer, service, decoder, suppressions, lifecycle)
        return self._storage

    def metrics_wal_limit(self, repository: EventRepository) -> None:
        if isinstance(repository, SqliteEventRepository):
            self.metrics.wal_limit(self.settings.sqlite_wal_max_bytes)

    def stop(self) -> bool:
        """Commit what is queued (within shutdown_timeout_s), close the repository. True when drained."""
        storage, self._storage = self._storage, None
        if storage is None:
            return True
        storage.lifecycle.close()
        storage.body_decoder.close()
        drained = storage.writer.close(self.settings.shutdown_timeout_s)
        storage.repository.close()
        return drained

    async def stop_serving(self) -> bool:
        """stop() for the app's lifespan: a writer-process client waits on the event loop for its answers."""
        storage = self._storage
        if storage is not None and isinstance(storage.writer, WriterClient):
            drained = await storage.writer.aclose(self.settings.shutdown_timeout_s)
            return self.stop() and drained
        return self.stop()

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            raise RuntimeNotStarted("the runtime's storage is not open: call start() (the app's lifespan does)")
        return self._storage

    @property
    def service(self) -> EventService:
        return self.storage.service

    @property
    def writer(self) -> EventWriter | WriterClient:
        return self.storage.writer

    @property
    def body_decoder(self) -> BodyDecoder:
        return self.storage.body_decoder


def build_runtime(
    settings: Settings | None = None,
    *,
    open_repository: Callable[[Settings], EventRepository] = open_store,
    metrics: PrometheusMetrics | None = None,
) -> Runtime:
    """Everything a process of the service needs, from one Settings (read from the environment if not given)."""
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_format)
    log = get_logger("telemetry")
    metrics = metrics or PrometheusMetrics(
        label_max_values=settings.metrics_label_max_values,
        allowed_actions=settings.metrics_allowed_actions,
        allowed_sources=settings.metrics_allowed_sources,
    )
    line_log = LineLog(settings.log_level, settings.log_format)
    rejections = Rejections(metrics, line_log)
    return Runtime(
        settings=settings,
        metrics=metrics,
        log=log,
        line_log=line_log,
        rejections=rejections,
        access=access_guard(settings, rejections),
        reads=ReadCapacity(
            concurrency=settings.read_concurrency, queue_max=settings.read_queue_max, wait_s=settings.read_queue_wait_s
        ),
        open_repository=open_repository,
    )
