"""Group commit: concurrent requests share one transaction, written by one writer thread per process.

A request's `await append(...)` returns only after the transaction holding its events has committed, so
a 2xx always means "stored". The event loop never waits on the database: the thread does, and hands each
result back with call_soon_threadsafe. The queue is bounded; when full, append raises WriteQueueFull at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from app.models import DomainError, UserActionEvent
from app.repository.port import AddResult, StorageUnavailable

_FAILURE_MEMORY_S = 10.0


class WriteQueueFull(DomainError):
    """More events wait for commit than the queue may hold: come back shortly (503 + Retry-After)."""


class WriterClosed(DomainError):
    """The service is shutting down and takes no new writes."""


class WriterMetrics(Protocol):
    def queue_depth(self, depth: int, capacity: int) -> None: ...
    def queue_full(self) -> None: ...
    def committed(self, batch_size: int, duration_s: float) -> None: ...


Item = TypeVar("Item")
Result = TypeVar("Result")
Item_contra = TypeVar("Item_contra", contravariant=True)


class Store(Protocol[Item_contra, Result]):
    """What the writer commits to: an EventRepository (events in, AddResults out), or the writer process's
    RowStore (the table's rows in, the wire's results out)."""

    def add(self, items: Sequence[Item_contra], /) -> list[Result]: ...


@dataclass(slots=True)
class _Pending(Generic[Item, Result]):
    events: Sequence[Item]
    # Called on the writer thread with the results (after COMMIT) or the exception.
    deliver: Callable[[list[Result] | BaseException], None]


def _to_future(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[list[Result]], result: list[Result] | BaseException
) -> None:
    def deliver() -> None:
        if future.done():  # the client went away; its events are stored all the same
            return
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)

    with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for this answer, the writer goes on
        loop.call_soon_threadsafe(deliver)


def _resolve(pending: _Pending[Item, Result], result: list[Result] | BaseException) -> None:
    with contextlib.suppress(Exception):  # whoever waits for the answer must not stop the writer
        pending.deliver(result)


class GroupCommitWriter(Generic[Item, Result]):
    """Items (events, or rows) committed to a Store in shared transactions; each request gets its results."""

    def __init__(
        self,
        repository: Store[Item, Result],
        metrics: WriterMetrics,
        *,
        max_queue: int = 10_000,
        max_batch: int = 2000,
        between_commits: Callable[[], None] | None = None,
    ) -> None:
        self._repository = repository
        # Upkeep that must not race our own writes (SQLite's WAL checkpoint): run here, after each commit.
        self._between_commits = between_commits
        self._metrics = metrics
        self._max_queue = max_queue
        self._max_batch = max_batch
        self._queue: deque[_Pending[Item, Result]] = deque()
        self._queued_events = 0
        self._cond = threading.Condition()
        self._closing = False
        self._after_commit: Callable[[], None] | None = None
        self._last_failure: tuple[float, str] | None = None  # (monotonic time, why) until a commit succeeds
        self._thread = threading.Thread(target=self._run, name="group-commit-writer", daemon=True)
        self._thread.start()
        self._metrics.queue_depth(0, max_queue)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._closing

    def recent_failure(self, within_s: float = _FAILURE_MEMORY_S) -> str | None:
        """Why the last commit failed, if it did within `within_s` and none has succeeded since.

        Taking the write lock (all a readiness probe can try without writing) still works on a full disk;
        the writer's own last commit says whether writes go through. The memory fades, so an idle
        instance is not kept out of rotation for good by one old failure.
        """
        failure = self._last_failure
        if failure is None or time.monotonic() - failure[0] > within_s:
            return None
        return failure[1]

    async def append(self, events: Sequence[Item]) -> list[Result]:
        """Store events; returns one result per event after their transaction has committed."""
        if not events:
            return []
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Result]] = loop.create_future()
        self.submit(events, functools.partial(_to_future, loop, future))
        return await future

    def after_each_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` on the writer thread once a transaction's outcomes have all been delivered (set it
        before the first submit): whoever delivers them one by one can then send them all at once."""
        self._after_commit = callback

    def submit(self, events: Sequence[Item], deliver: Callable[[list[Result] | BaseException], None]) -> None:
        """append() without an event loop: `deliver` gets the outcome on the writer thread, after COMMIT.
        Raises WriterClosed or WriteQueueFull at once, like append()."""
        pending = _Pending(events, deliver)
        with self._cond:
            if self._closing:
                raise WriterClosed("shutting down")
            # An empty queue takes any request, so a batch larger than the queue is not refused forever.
            if self._queued_events and self._queued_events + len(events) > self._max_queue:
                self._metrics.queue_full()
                raise WriteQueueFull(f"{self._queued_events} events already wait for commit")
            self._queue.append(pending)
            self._queued_events += len(events)
            self._metrics.queue_depth(self._queued_events, self._max_queue)
            self._cond.notify()

    def _take(self) -> list[_Pending[Item, Result]] | None:
        """Wait for work, then take whole requests up to max_batch events (at least one request)."""
        with self._cond:
            while not self._queue:
                if self._closing:
                    return None
                self._cond.wait()
            taken = [self._queue.popleft()]
            size = len(taken[0].events)
            while self._queue and size + len(self._queue[0].events) <= self._max_batch:
                item = self._queue.popleft()
                taken.append(item)
                size += len(item.events)
            self._queued_events -= size
            self._metrics.queue_depth(self._queued_events, self._max_queue)
            return taken

    def _run(self) -> None:
        while (taken := self._take()) is not None:
            self._commit(taken)
            if self._after_commit is not None:
                with contextlib.suppress(Exception):  # like a delivery: it must not stop the writer
                    self._after_commit()
            if self._between_commits is not None:
                with contextlib.suppress(Exception):  # upkeep failing must never stop the writer; it runs again
                    self._between_commits()

    def _commit(self, taken: list[_Pending[Item, Result]]) -> None:
        events = [e for p in taken for e in p.events]
        started = time.perf_counter()
        try:
            results = self._repository.add(events)
        except StorageUnavailable as exc:
            # The store itself is down: retrying each request alone would only wait N times for the same answer.
            self._last_failure = (time.monotonic(), str(exc))
            for pending in taken:
                _resolve(pending, exc)
            return
        except Exception as exc:
            if len(taken) > 1:
                # One request's failure must not fail the others that shared its transaction.
                for pending in taken:
                    self._commit([pending])
                return
            self._last_failure = (time.monotonic(), f"{type(exc).__name__}: {exc}")
            _resolve(taken[0], StorageUnavailable(f"{type(exc).__name__}: {exc}"))
            return
        self._last_failure = None
        self._metrics.committed(len(events), time.perf_counter() - started)
        offset = 0
        for pending in taken:
            n = len(pending.events)
            _resolve(pending, results[offset : offset + n])
            offset += n

    def close(self, timeout_s: float = 20.0) -> bool:
        """Refuse new writes, commit everything queued, stop the thread. True when drained in time."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()


# The writer over an EventRepository (in each process, or the writer thread): events in, AddResults out.
EventWriter = GroupCommitWriter[UserActionEvent, AddResult]
