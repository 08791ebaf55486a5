"""A worker's end of the writer process: the same `await append(events)` as GroupCommitWriter.

Requests go out on one Unix socket connection; a reader task on the event loop matches each answer to its
waiting request. No thread, no hand-off: the event loop only encodes rows and decodes answers.
If the connection breaks (the writer process died), every request in flight fails with StorageUnavailable
(503: the client retries, and event ids make the retry safe), and the next append connects again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from app.models import UserActionEvent
from app.repository import writer_protocol as wire
from app.repository.group_commit import _FAILURE_MEMORY_S, WriteQueueFull, WriterClosed, WriterMetrics
from app.repository.port import AddResult, StorageUnavailable
from app.repository.sqlite_wal import WalMetrics

_WRITE_BUFFER_HIGH = 4 * 2**20  # bytes queued for the socket before an append waits for it to drain
# Requests of one turn of the event loop sent at once, at most: a burst's first ones go out while the loop
# still parses the rest, so the writer process commits them meanwhile (docs/benchmarks.md, issue 16).
SEND_AT = 8


@dataclass(slots=True)
class _InFlight:
    events: Sequence[UserActionEvent]
    future: asyncio.Future[list[AddResult]]


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, stream: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.stream = stream
        self.pending: dict[int, _InFlight] = {}
        self.task: asyncio.Task[None] | None = None
        self.outgoing: list[bytes] = []  # requests of this turn of the event loop not yet written

    def flush(self) -> None:
        requests, self.outgoing = self.outgoing, []
        if not requests:  # sent already, SEND_AT of them at once
            return
        try:
            self.stream.write(requests[0] if len(requests) == 1 else b"".join(requests))
        except (OSError, RuntimeError) as exc:  # the transport closed under us: nothing of these was sent
            failure = StorageUnavailable(f"the writer process went away ({type(exc).__name__})")
            for in_flight in self.pending.values():
                if not in_flight.future.done():
                    in_flight.future.set_exception(failure)


class WriterClient:
    def __init__(
        self, socket_path: Path, metrics: WriterMetrics, *, capacity: int, wal_metrics: WalMetrics | None = None
    ) -> None:
        self._socket_path = socket_path
        self._metrics = metrics
        self._wal_metrics = wal_metrics  # where the writer process's WAL size and checkpoints are reported
        self._capacity = capacity
        self._numbers = itertools.count(1)
        self._connection: _Connection | None = None
        self._connecting: asyncio.Lock | None = None
        self._closing = False
        self._last_failure: tuple[float, str] | None = None
        self._metrics.queue_depth(0, capacity)

    @property
    def alive(self) -> bool:
        return not self._closing

    def recent_failure(self, within_s: float = _FAILURE_MEMORY_S) -> str | None:
        """Why the writer process's last commit (or its connection) failed, if within `within_s` and no
        commit has succeeded since: the same readiness signal as GroupCommitWriter.recent_failure."""
        failure = self._last_failure
        if failure is None or time.monotonic() - failure[0] > within_s:
            return None
        return failure[1]

    async def append(self, events: Sequence[UserActionEvent]) -> list[AddResult]:
        """Store events; returns one result per event after the writer process has committed them."""
        if self._closing:
            raise WriterClosed("shutting down")
        if not events:
            return []
        connection = self._connection
        if connection is None or connection.stream.is_closing():
            # Broken but not yet noticed by its reader task: that task fails what it sent; this one connects anew.
            connection = await self._connect()
        message = wire.request(number := next(self._numbers), events)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[AddResult]] = loop.create_future()
        connection.pending[number] = _InFlight(events, future)
        # The requests made in one turn of the loop go out together at its end: fewer system calls here and
        # fewer wake-ups of the writer process. But not all of a long turn's: one that parses a burst of 30
        # requests would leave the writer idle until the last, then commit all 30 while the loop, having
        # nothing else to do, waits. Every SEND_AT requests are sent at once, and the writer's commits overlap
        # the loop's parsing.
        connection.outgoing.append(message)
        if len(connection.outgoing) >= SEND_AT:
            connection.flush()
        elif len(connection.outgoing) == 1:
            loop.call_soon(connection.flush)
        if connection.stream.transport.get_write_buffer_size() > _WRITE_BUFFER_HIGH:
            with contextlib.suppress(ConnectionError):
                await connection.stream.drain()
        return await future

    async def _connect(self) -> _Connection:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._connection is not None and not self._connection.stream.is_closing():
                return self._connection
            try:
                reader, stream = await asyncio.open_unix_connection(str(self._socket_path))
            except OSError as exc:
                raise StorageUnavailable(f"the writer process is not answering ({exc.strerror})") from None
            connection = _Connection(reader, stream)
            connection.task = asyncio.create_task(self._read_answers(connection))
            self._connection = connection
            return connection

    async def _read_answers(self, connection: _Connection) -> None:
        reason = "the writer process closed the connection"
        try:
            while True:
                header = await connection.reader.readexactly(wire.HEADER_BYTES)
                self._deliver(connection, orjson.loads(await connection.reader.readexactly(wire.frame_length(header))))
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            reason = f"the writer process went away ({type(exc).__name__})"
        except Exception as exc:  # a malformed frame: this connection can no longer be trusted
            reason = f"unreadable answer from the writer process ({type(exc).__name__}: {exc})"
        finally:
            if self._connection is connection:
                self._connection = None
            connection.stream.close()
            failure = StorageUnavailable(f"{reason}: the events may not be stored; send them again")
            if connection.pending:
                self._last_failure = (time.monotonic(), reason)
            for in_flight in connection.pending.values():
                if not in_flight.future.done():
                    in_flight.future.set_exception(failure)
            connection.pending.clear()
            self._metrics.queue_depth(0, self._capacity)  # no longer the one told; a stale value would add up

    def _deliver(self, connection: _Connection, message: list[Any]) -> None:
        number, ok = message[0], message[1]
        if number == wire.DEPTH:
            self._metrics.queue_depth(int(message[2]), self._capacity)
            if message[3] is not None and self._wal_metrics is not None:
                self._wal_metrics.wal_size(int(message[3]))
            return
        for report in message[-1]:
            if report[0] >= 0:
                self._metrics.committed(int(report[0]), report[1])
            elif self._wal_metrics is not None:
                self._wal_metrics.wal_checkpointed(report[1], bool(report[2]))
        in_flight = connection.pending.pop(number)
        if in_flight.future.done():  # the client went away; its events are stored all the same
            return
        if ok:
            self._last_failure = None
            in_flight.future.set_result(wire.decode_results(message[2], in_flight.events))
            return
        kind, text = message[2], message[3]
        if kind == "queue_full":
            self._metrics.queue_full()
            in_flight.future.set_exception(WriteQueueFull(text))
        elif kind == "closed":
            in_flight.future.set_exception(WriterClosed(text))
        else:
            self._last_failure = (time.monotonic(), text)
            in_flight.future.set_exception(StorageUnavailable(text))

    def close(self, timeout_s: float = 20.0) -> bool:
        """Take no new writes and hang up without waiting (aclose waits for the answers in flight)."""
        self._closing = True
        connection, self._connection = self._connection, None
        if connection is None:
            return True
        connection.stream.close()
        return not connection.pending

    async def aclose(self, timeout_s: float = 20.0) -> bool:
        """Take no new writes, wait for the answers of those in flight, close. True when all came in time."""
        self._closing = True
        connection = self._connection
        if connection is None:
            return True
        waiting = [f.future for f in connection.pending.values()]
        drained = True
        if waiting:
            _, not_done = await asyncio.wait(waiting, timeout=timeout_s)
            drained = not not_done
        connection.stream.close()
        if connection.task is not None:
            connection.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connection.task
        return drained
