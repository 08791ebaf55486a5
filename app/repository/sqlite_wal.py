"""Keeps a SQLite write-ahead log bounded while writes keep arriving.

A PASSIVE checkpoint from another thread never resets the WAL under sustained load: new frames are
appended while it runs, so it is never complete when the next transaction starts, and the file only
grows (5.8 GB in 60 s was seen). The writer thread owns the write lock between group commits.
A checkpoint run there has no writer of ours to race. Past `checkpoint_bytes` it runs PASSIVE (never
waits; a complete one lets the next commit start the log again from its beginning). Readers that overlap
without pause can keep a passive one from ever completing, so past half of `max_bytes` it runs RESTART,
which holds the write lock and waits for readers on older snapshots: at most `_SHORT_WAIT_MS` while the
log is under its bound (ingest stays fast), the full busy timeout once it is past (the bound wins).
`journal_size_limit` (max_bytes, on every connection) cuts the file back once the log has restarted.
Measured in docs/benchmarks.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Protocol

CheckpointMode = Literal["PASSIVE", "RESTART", "TRUNCATE"]


_MIN_INTERVAL_S = 0.25
_SHORT_WAIT_MS = 50


class WalMetrics(Protocol):
    def wal_size(self, size_bytes: int) -> None: ...
    def wal_checkpointed(self, duration_s: float, complete: bool) -> None: ...


def _size(wal: Path) -> int:
    try:
        return wal.stat().st_size
    except FileNotFoundError:
        return 0


class WalBound:
    """Called by the writer thread after each group commit: a stat() each time, a checkpoint past the mark."""

    def __init__(
        self,
        database: Path,
        checkpoint: Callable[[CheckpointMode, int | None], tuple[int, int, int]],
        metrics: WalMetrics,
        *,
        checkpoint_bytes: int,
        max_bytes: int,
    ) -> None:
        self._wal = database.with_name(database.name + "-wal")
        self._checkpoint = checkpoint
        self._metrics = metrics
        self._checkpoint_bytes = checkpoint_bytes
        self._restart_bytes = max_bytes // 2
        self._max_bytes = max_bytes
        self._next_at = 0.0

    def __call__(self) -> None:
        size = _size(self._wal)
        self._metrics.wal_size(size)
        if not self._checkpoint_bytes or size < self._checkpoint_bytes:
            return
        started = time.perf_counter()
        if started < self._next_at and size < self._restart_bytes:
            return
        # A reset log keeps its file size, so past the mark every commit would checkpoint (and fsync the
        # database): a few times a second is enough to keep up, and costs far less.
        self._next_at = started + _MIN_INTERVAL_S
        if size < self._restart_bytes:
            busy, log_frames, checkpointed = self._checkpoint("PASSIVE", None)
        else:
            wait_ms = None if size >= self._max_bytes else _SHORT_WAIT_MS
            busy, log_frames, checkpointed = self._checkpoint("RESTART", wait_ms)
        # busy: a reader (or another process's writer) kept it from finishing; the next commit tries again.
        self._metrics.wal_checkpointed(time.perf_counter() - started, not busy and log_frames == checkpointed)
        self._metrics.wal_size(_size(self._wal))
