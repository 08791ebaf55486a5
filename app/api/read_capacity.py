"""Reads (get, list, stats, export pages) run under their own bounded concurrency, on their own threads.

Sync routes share one thread pool (40 threads) with /readyz and /metrics: 50 slow /v1/stats used to take
every thread, and health checks waited behind them for seconds. Here at most `concurrency` reads run at
once, on a thread limiter of their own; up to `queue_max` more wait (at most `wait_s`) for a turn; past
that, a read is refused at once with 503 + Retry-After, so health, metrics and ingest never queue behind
reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

import anyio
import anyio.to_thread

from app.api.problems import RETRY_AFTER_S, ApiProblem

T = TypeVar("T")


class ReadCapacity:
    def __init__(self, *, concurrency: int, queue_max: int, wait_s: float) -> None:
        self._concurrency = concurrency
        self._queue_max = queue_max
        self._wait_s = wait_s
        self._slots: asyncio.Semaphore | None = None  # made on first use, inside the server's event loop
        self._threads: anyio.CapacityLimiter | None = None
        self._waiting = 0

    def _busy(self, why: str) -> ApiProblem:
        return ApiProblem(503, "reads-busy", why, headers={"Retry-After": str(RETRY_AFTER_S)})

    def _ready(self) -> tuple[asyncio.Semaphore, anyio.CapacityLimiter]:
        if self._slots is None or self._threads is None:
            self._slots = asyncio.Semaphore(self._concurrency)
            self._threads = anyio.CapacityLimiter(self._concurrency)
        return self._slots, self._threads

    async def run(self, read: Callable[..., T], *args: object) -> T:
        """read(*args) on a read thread once a slot is free; ApiProblem 503 when the queue is full."""
        slots, threads = self._ready()
        if slots.locked():
            if self._waiting >= self._queue_max:
                raise self._busy(f"{self._concurrency} reads run and {self._waiting} wait: try again shortly")
            self._waiting += 1
            try:
                await asyncio.wait_for(slots.acquire(), self._wait_s)
            except TimeoutError:
                raise self._busy(f"no read slot within {self._wait_s:g} s: try again shortly") from None
            finally:
                self._waiting -= 1
        else:
            await slots.acquire()
        try:
            return await anyio.to_thread.run_sync(read, *args, limiter=threads)
        finally:
            slots.release()

    async def stream(self, chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
        """An export: each chunk is read in a turn of its own, so a slow client holds no slot between chunks.

        Once the response has begun there is no way to answer 503, so later chunks wait for a turn.
        """
        slots, threads = self._ready()
        while True:
            async with slots:
                chunk = await anyio.to_thread.run_sync(next, chunks, None, limiter=threads)
            if chunk is None:
                return
            yield chunk
