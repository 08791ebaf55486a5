"""Prometheus metrics: technical (requests, latency) and domain (actions, rejections, duplicates, writes).

The service and the writer see small methods (event_recorded, committed, ...), not prometheus_client.
Client-supplied label values are bounded: a client sending 10,000 actions adds at most N series.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client import multiprocess as prom_multiprocess
from prometheus_client.openmetrics import exposition as openmetrics

# Multiprocess mode (serve --workers N): prometheus_client writes each value to this process's mmap file and,
# before every write, asks which process it is in, to notice a fork. Its default asks os.getpid(), a system
# call: under single POSTs that check was most of the metrics' cost, which took 12 % of a worker's py-spy
# samples, 3 % without it (docs/benchmarks.md, issue 16's seventh session). The pid is kept here instead and
# renewed in a forked child, so the check stays exact and costs a read.
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


def _process_id() -> int:
    return _pid


if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.register_at_fork(after_in_child=_forked)
    # Chosen before this module makes any metric: every value made from here on uses it.
    values.ValueClass = values.MultiProcessValue(process_identifier=_process_id)  # type: ignore[no-untyped-call]

OTHER = "other"
UNMATCHED_ROUTE = "unmatched"

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000)


class BoundedLabel:
    """At most max_values distinct values pass through (or only allow-listed ones); the rest become 'other'."""

    def __init__(self, max_values: int, allowed: Iterable[str] | None = None) -> None:
        self._max = max_values
        self._allowed = frozenset(allowed) if allowed is not None else None
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if self._allowed is not None:
            return value if value in self._allowed else OTHER
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self._max:
                self._seen.add(value)
                return value
        return OTHER


class PrometheusMetrics:
    """All of the service's metrics on one registry (one per app, so tests can build many apps)."""

    def __init__(
        self,
        *,
        label_max_values: int = 50,
        allowed_actions: Iterable[str] | None = None,
        allowed_sources: Iterable[str] | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # Set by tracing when it is on: the current trace's ids, attached to latency observations.
        self.exemplar: Callable[[], dict[str, str] | None] = _no_exemplar
        self._action = BoundedLabel(label_max_values, allowed_actions)
        self._source = BoundedLabel(label_max_values, allowed_sources)
        self._action_children: dict[tuple[str, str], Any] = {}  # (action, source) as sent -> labelled counter
        self._http_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        r = self.registry
        self.http_requests = Counter(
            "http_requests", "HTTP requests answered", ["method", "route", "status"], registry=r
        )
        self.http_duration = Histogram(
            "http_request_duration_seconds",
            "Time from request start to response end",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.user_actions = Counter(
            "telemetry_user_actions", "User action events recorded", ["action", "source"], registry=r
        )
        self.rejected = Counter("telemetry_events_rejected", "Events refused, by reason", ["reason"], registry=r)
        self.duplicates = Counter(
            "telemetry_events_duplicate", "Events received again with the same event_id and payload", registry=r
        )
        self.queue_depth_gauge = Gauge(
            "telemetry_write_queue_depth",
            "Events waiting for commit",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.queue_capacity_gauge = Gauge(
            "telemetry_write_queue_capacity",
            "Events the write queue may hold",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.queue_full_total = Counter(
            "telemetry_write_queue_full", "Ingest requests refused with 503 because the queue was full", registry=r
        )
        self.retention_removed_total = Counter(
            "telemetry_retention_removed", "Events removed by retention (older than the period)", registry=r
        )
        self.retention_last_run = Gauge(
            "telemetry_retention_last_run_timestamp_seconds",
            "When the last retention pass ended (Unix time); 0: none yet",
            registry=r,
            multiprocess_mode="max",
        )
        self.oldest_event_age_gauge = Gauge(
            "telemetry_oldest_event_age_seconds",
            "Age of the oldest stored event's timestamp, as of the last retention pass; 0: no event",
            registry=r,
            multiprocess_mode="max",
        )
        self.erasures_total = Counter("telemetry_erasures", "Per-user erasures carried out", registry=r)
        self.erased_events_total = Counter("telemetry_erased_events", "Events removed by erasures", registry=r)
        self.commit_batch = Histogram(
            "telemetry_commit_batch_size", "Events written per group commit", buckets=_BATCH_BUCKETS, registry=r
        )
        self.commit_duration = Histogram(
            "telemetry_commit_duration_seconds", "Duration of one group commit", buckets=_LATENCY_BUCKETS, registry=r
        )
        # One WAL file per database, shared by every worker: the largest figure any worker saw is the file's.
        self.wal_bytes = Gauge(
            "telemetry_sqlite_wal_bytes", "Size of the SQLite write-ahead log file", registry=r, multiprocess_mode="max"
        )
        self.wal_limit_bytes = Gauge(
            "telemetry_sqlite_wal_limit_bytes",
            "The bound the WAL should stay under (TELEMETRY_SQLITE_WAL_MAX_BYTES)",
            registry=r,
            multiprocess_mode="max",
        )
        self.checkpoint_duration = Histogram(
            "telemetry_sqlite_checkpoint_duration_seconds",
            "Duration of one WAL checkpoint run by the writer between group commits",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.checkpoint_incomplete = Counter(
            "telemetry_sqlite_checkpoint_incomplete",
            "Writer checkpoints that readers or another process kept from finishing",
            registry=r,
        )

    # -- domain (the service's port) --
    def event_recorded(self, action: str, source: str) -> None:
        child = self._action_children.get((action, source))
        if child is None:  # once per distinct pair; the bounded labels keep this dict small
            child = self.user_actions.labels(self._action(action), self._source(source))
            if len(self._action_children) < 10_000:
                self._action_children[(action, source)] = child
        child.inc()

    def event_rejected(self, reason: str, count: int = 1) -> None:
        self.rejected.labels(reason).inc(count)  # a RejectionReason: a fixed set of values

    def event_duplicate(self) -> None:
        self.duplicates.inc()

    # -- data lifecycle --
    def retention_removed(self, count: int) -> None:
        self.retention_removed_total.inc(count)

    def retention_finished(self, at: datetime) -> None:
        self.retention_last_run.set(at.timestamp())

    def oldest_event_age(self, seconds: float | None) -> None:
        self.oldest_event_age_gauge.set(seconds if seconds is not None else 0.0)

    def user_erased(self, events_removed: int) -> None:
        self.erasures_total.inc()
        self.erased_events_total.inc(events_removed)

    # -- writer --
    def queue_depth(self, depth: int, capacity: int) -> None:
        self.queue_depth_gauge.set(depth)
        self.queue_capacity_gauge.set(capacity)

    def queue_full(self) -> None:
        self.queue_full_total.inc()

    def committed(self, batch_size: int, duration_s: float) -> None:
        self.commit_batch.observe(batch_size)
        self.commit_duration.observe(duration_s)

    # -- SQLite write-ahead log --
    def wal_size(self, size_bytes: int) -> None:
        self.wal_bytes.set(size_bytes)

    def wal_checkpointed(self, duration_s: float, complete: bool) -> None:
        self.checkpoint_duration.observe(duration_s)
        if not complete:
            self.checkpoint_incomplete.inc()

    def wal_limit(self, limit_bytes: int) -> None:
        self.wal_limit_bytes.set(limit_bytes)

    # -- HTTP --
    def http_request(self, method: str, route: str, status: int, duration_s: float) -> None:
        # method, route (a template) and status are bounded sets, so the labelled children are kept.
        children = self._http_children.get((method, route, status))
        if children is None:
            children = (
                self.http_requests.labels(method, route, str(status)),
                self.http_duration.labels(method, route),
            )
            self._http_children[(method, route, status)] = children
        children[0].inc()
        children[1].observe(duration_s, self.exemplar())

    def exposition(self, openmetrics_format: bool = False) -> bytes:
        """The text format for /metrics; in multiprocess mode, the sum over every worker process.
        OpenMetrics (asked for when exemplars are on) is the format that carries exemplars."""
        generate = openmetrics.generate_latest if openmetrics_format else generate_latest
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            prom_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate(registry)
        return generate(self.registry)


def _no_exemplar() -> None:
    return None
