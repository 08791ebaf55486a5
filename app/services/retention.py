"""Use case: remove events older than the retention period, in bounded chunks that never block ingestion.

Each chunk is one short transaction of at most chunk_rows removals; between chunks the pass rests for
`rest_ratio` times as long as the chunk took, so it holds the store's write lock (SQLite) or its row locks
(PostgreSQL) a small share of the time: ingestion's group commits take turns with it, never wait behind a
long DELETE. On PostgreSQL one replica at a time runs a pass (an advisory lock); the others skip theirs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from app.repository.port import EventRepository


class LifecycleLog(Protocol):
    def info(self, event: str, **fields: object) -> object: ...


class RetentionMetrics(Protocol):
    def retention_removed(self, count: int) -> None: ...
    def retention_finished(self, at: datetime) -> None: ...
    def oldest_event_age(self, seconds: float | None) -> None: ...


@dataclass(frozen=True, slots=True)
class RetentionReport:
    cutoff: datetime
    removed: int  # for a dry run: how many would be
    chunks: int
    seconds: float
    ran: bool  # False: another replica holds the lock, this pass did nothing
    dry_run: bool = False


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Retention:
    def __init__(
        self,
        repository: EventRepository,
        days: float,
        metrics: RetentionMetrics,
        *,
        chunk_rows: int = 1000,
        rest_ratio: float = 9.0,
        clock: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self._repository = repository
        self._period = timedelta(days=days)
        self._metrics = metrics
        self._chunk_rows = chunk_rows
        self._rest_ratio = rest_ratio
        self._clock = clock
        self._sleep = sleep

    def cutoff(self) -> datetime:
        return self._clock() - self._period

    def run_pass(self, *, dry_run: bool = False, stop: threading.Event | None = None) -> RetentionReport:
        """Remove every event older than the cutoff (fixed at the start of the pass), chunk by chunk."""
        cutoff = self.cutoff()
        started = time.perf_counter()
        if dry_run:
            would = self._repository.count_before(cutoff)
            return RetentionReport(cutoff, would, 0, time.perf_counter() - started, ran=True, dry_run=True)
        removed = chunks = 0
        with self._repository.retention_lock() as held:
            if not held:
                return RetentionReport(cutoff, 0, 0, time.perf_counter() - started, ran=False)
            while stop is None or not stop.is_set():
                chunk_started = time.perf_counter()
                n = self._repository.remove_before(cutoff, self._chunk_rows)
                if n == 0:
                    break
                removed += n
                chunks += 1
                self._metrics.retention_removed(n)
                if n < self._chunk_rows:
                    break
                self._rest(time.perf_counter() - chunk_started, stop)
        self._metrics.retention_finished(self._clock())
        self.observe_oldest()
        return RetentionReport(cutoff, removed, chunks, time.perf_counter() - started, ran=True)

    def observe_oldest(self) -> None:
        oldest = self._repository.oldest_timestamp()
        age = (self._clock() - oldest).total_seconds() if oldest is not None else None
        self._metrics.oldest_event_age(age)

    def _rest(self, chunk_s: float, stop: threading.Event | None) -> None:
        pause = max(chunk_s * self._rest_ratio, 0.001)
        if stop is not None:
            stop.wait(pause)
        else:
            self._sleep(pause)


class LifecycleTask:
    """A background thread of the service: a retention pass every interval_s (when a period is set), and a
    refresh of the suppression list every refresh_s. Stopped, mid-pass if need be, by close()."""

    def __init__(
        self,
        retention: Retention | None,
        interval_s: float,
        refresh: Callable[[], None] | None,
        refresh_s: float,
        log: LifecycleLog,
    ) -> None:
        self._retention = retention
        self._interval_s = interval_s
        self._refresh = refresh
        self._refresh_s = refresh_s
        self._log = log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="data-lifecycle", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_pass = time.monotonic()  # the first pass right after start-up
        while not self._stop.is_set():
            if self._refresh is not None:
                try:
                    self._refresh()
                except Exception as exc:  # the store is down: keep the last list, try again later
                    self._log.info("suppression_refresh_failed", error=f"{type(exc).__name__}: {exc}")
            if self._retention is not None and time.monotonic() >= next_pass:
                try:
                    report = self._retention.run_pass(stop=self._stop)
                    self._log.info("retention_pass", removed=report.removed, chunks=report.chunks,
                                   seconds=round(report.seconds, 3), ran=report.ran,
                                   cutoff=report.cutoff.isoformat())  # fmt: skip
                except Exception as exc:  # the store is down: the next interval tries again
                    self._log.info("retention_pass_failed", error=f"{type(exc).__name__}: {exc}")
                next_pass = time.monotonic() + self._interval_s
            self._stop.wait(self._refresh_s if self._refresh is not None else self._interval_s)

    def close(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)
