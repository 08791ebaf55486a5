"""Keeps a SQLite write-ahead log bounded while writes keep arriving.

A PASSIVE checkpoint from another thread never resets the WAL under sustained load: new frames are
appended while it runs, so it is never complete when the next transaction starts, and the file only
grows (5.8 GB in 60 s was seen). The writer thread owns the write lock between group commits.
A checkpoint run there has no writer of ours to race. Past `checkpoint_bytes` it runs PASSIVE (never
waits; a complete one lets the next commit start the log again from its beginning, and
`journal_size_limit` = checkpoint_bytes cuts the file back). Readers that overlap without pause can keep
passive ones from ever completing, so once the file passes half of `max_bytes` it runs RESTART, which
holds the write lock and waits for readers on older snapshots: 50 ms at first, twice as long after each
failure (up to 1.6 s) while the log is under three quarters of its bound, then on every commit with the
full busy timeout (the bound wins over ingest latency). Measured in docs/benchmarks.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Protocol

CheckpointMode = Literal["PASSIVE", "RESTART", "TRUNCATE"]


_MIN_INTERVAL_S = 0.25
_FIRST_WAIT_MS = 50
_LONGEST_WAIT_MS = 1600


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
        self._urgent_bytes = max_bytes - max_bytes // 4
        self._next_at = 0.0
        self._wait_ms = _FIRST_WAIT_MS

    def __call__(self) -> None:
        size = _size(self._wal)
        self._metrics.wal_size(size)
        # journal_size_limit cuts a restarted log back to checkpoint_bytes, so the file passes the mark only
        # once the log holds that much again: one checkpoint per checkpoint_bytes written.
        if not self._checkpoint_bytes or size <= self._checkpoint_bytes:
            return
        started = time.perf_counter()
        # Past three quarters of the bound the next commit could cross it: no more backing off.
        urgent = size >= self._urgent_bytes
        if started < self._next_at and not urgent:  # readers kept the last one from completing
            return
        if size < self._restart_bytes:
            busy, log_frames, checkpointed = self._checkpoint("PASSIVE", None)
            wait_s = 0.0
        else:
            # The log did not restart: wait for the readers on old snapshots, a little longer each time.
            wait_ms = None if urgent else self._wait_ms
            busy, log_frames, checkpointed = self._checkpoint("RESTART", wait_ms)
            self._wait_ms = min(self._wait_ms * 2, _LONGEST_WAIT_MS) if busy else _FIRST_WAIT_MS
            wait_s = (wait_ms or 0) / 1000
        complete = not busy and log_frames == checkpointed
        self._next_at = started + max(_MIN_INTERVAL_S, wait_s) if not complete else 0.0
        self._metrics.wal_checkpointed(time.perf_counter() - started, complete)
        self._metrics.wal_size(_size(self._wal))
