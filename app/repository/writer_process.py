"""The group-commit writer in its own process, and the supervisor that owns it.

`serve` starts one writer process per database (whatever --workers says) before the HTTP workers and
points them at its Unix socket (TELEMETRY_WRITER_SOCKET). The process runs the same GroupCommitWriter
and repository as an in-process writer would, over the workers' rows rather than events (RowStore); the
workers send rows and read answers on their event loops (app/repository/writer_client.py; the frames are
in writer_protocol.py). SQLite's CPU moves to another core, and out of the workers' GIL.

Lifecycle: the supervisor restarts the process when it dies (each worker answers its pending requests
with 503 and reconnects); SIGTERM (or the supervisor's stdin pipe closing: the service died) makes it
stop taking connections, commit everything queued, answer, and exit.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from app.models import DomainError
from app.repository import writer_protocol as wire
from app.repository.group_commit import GroupCommitWriter, WriteQueueFull, WriterClosed
from app.repository.port import EventRepository, StorageUnavailable
from app.repository.sqlite import SqliteEventRepository, TableRow, table_event

MODULE = "app.commands.writer"  # the writer process's entry point
_DEPTH_INTERVAL_S = 0.05


class ReportedCommits:
    """The writer's metrics, sent to the workers: each commit is reported once, in the next frame sent;
    the queue depth is pushed (latest value, by a thread of its own) to one worker, whose gauge shows it."""

    def __init__(self) -> None:
        self._commits: deque[list[float]] = deque()
        self._checkpoints: deque[list[float]] = deque()
        self._depth = 0
        self._wal_size: int | None = None
        self.depth_changed = threading.Event()

    @property
    def depth(self) -> int:
        return self._depth

    def queue_depth(self, depth: int, capacity: int) -> None:
        # Called under the writer's lock: only note it; WriterServer's depth thread does the sending.
        self._depth = depth
        self.depth_changed.set()

    def queue_full(self) -> None:
        """Counted by the worker that gets the refusal."""

    def committed(self, batch_size: int, duration_s: float) -> None:
        self._commits.append([batch_size, duration_s])  # deque.append: safe from the writer thread

    def wal_size(self, size_bytes: int) -> None:
        # Like the depth: the latest value, pushed by the depth thread.
        self._wal_size = size_bytes
        self.depth_changed.set()

    def wal_checkpointed(self, duration_s: float, complete: bool) -> None:
        self._checkpoints.append([duration_s, 1.0 if complete else 0.0])

    @property
    def gauges(self) -> tuple[int, int | None]:
        return self._depth, self._wal_size

    def take(self) -> wire.Commits:
        """Commits and WAL checkpoints since the last frame: [[events, seconds]...] + [["checkpoint", s, complete]]."""
        taken: wire.Commits = []
        while self._commits:
            taken.append(self._commits.popleft())
        while self._checkpoints:
            taken.append([-1.0, *self._checkpoints.popleft()])
        return taken


class RowStore:
    """What the writer process commits: the workers' rows go into the events table as they came, with no
    event built (orjson decodes a row, SQLite inserts it; docs/benchmarks.md, issue 16's sixth session).
    Only when some event_id is known already (a client's retry, rare) are the events built, and the
    repository's add() tells duplicates from conflicts, as it does in-process."""

    def __init__(self, repository: EventRepository) -> None:
        self._repository = repository
        self._add_new = repository.add_new if isinstance(repository, SqliteEventRepository) else None

    def add(self, rows: Sequence[TableRow]) -> list[wire.Result]:
        if self._add_new is not None and self._add_new(rows):
            return [wire.ACCEPTED] * len(rows)
        return wire.encode_results(self._repository.add([table_event(row) for row in rows]))


RowWriter = GroupCommitWriter[TableRow, wire.Result]


_REFUSALS: tuple[tuple[type[DomainError], str], ...] = (
    (WriteQueueFull, "queue_full"),
    (WriterClosed, "closed"),
    (StorageUnavailable, "unavailable"),
)


class _Peer:
    """One worker's connection: the bytes of a frame not yet complete, and the answers waiting to be sent."""

    __slots__ = ("conn", "inbox", "outbox", "send_lock")

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.inbox = bytearray()
        self.outbox: list[bytes] = []  # appended and sent by the writer thread only
        self.send_lock = threading.Lock()

    def send(self, message: bytes) -> None:
        with self.send_lock, contextlib.suppress(OSError):  # a worker gone: its answer has nobody to go to
            self.conn.sendall(message)


_READ_BYTES = 2**20


class WriterServer:
    """Answers the workers' requests through one GroupCommitWriter, without an event loop.

    One thread reads every connection (a selector: no thread per worker) and submits each request; the
    writer thread collects each transaction's answers per connection and sends them after COMMIT in one
    write, so a transaction of many requests costs one send per worker, not one per request.
    """

    def __init__(self, writer: RowWriter, commits: ReportedCommits) -> None:
        self._writer = writer
        self._commits = commits
        # Oldest first: the first live connection is the one told the queue depth.
        self._connections: dict[socket.socket, _Peer] = {}
        self._lock = threading.Lock()
        self._waiting: dict[_Peer, None] = {}  # peers with answers in their outbox, in first-answer order
        self._listener: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector = selectors.DefaultSelector()
        self._closed = False
        writer.after_each_commit(self._send_answers)

    def listen(self, socket_path: Path) -> None:
        socket_path.unlink(missing_ok=True)  # a dead predecessor's socket file
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(socket_path))
        listener.listen(128)
        self._listener = listener
        self._selector.register(listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        threading.Thread(target=self._read_requests, name="writer-requests", daemon=True).start()
        threading.Thread(target=self._push_depth, name="writer-depth", daemon=True).start()

    def _push_depth(self) -> None:
        """Send the latest queue depth to the oldest connection whenever it changes (or that connection does)."""
        told: tuple[_Peer, tuple[int, int | None]] | None = None
        while not self._closed:
            self._commits.depth_changed.wait(1.0)
            self._commits.depth_changed.clear()
            with self._lock:
                first = next(iter(self._connections.values()), None)
            if first is None:
                continue
            gauges = self._commits.gauges
            if told == (first, gauges):
                continue
            first.send(wire.depth(*gauges))
            told = (first, gauges)
            # A gauge, scraped every few seconds: at most this many updates a second, not two per request.
            time.sleep(_DEPTH_INTERVAL_S)

    def _read_requests(self) -> None:
        while not self._closed:
            for key, _ in self._selector.select():
                if key.fileobj is self._listener:
                    self._accept()
                elif isinstance(key.data, _Peer):
                    self._read(key.data)
        self._selector.close()

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return  # closed: no new connections
        peer = _Peer(conn)
        with self._lock:
            self._connections[conn] = peer
        self._selector.register(conn, selectors.EVENT_READ, peer)
        self._commits.depth_changed.set()  # a first connection learns the depth at once

    def _read(self, peer: _Peer) -> None:
        try:
            data = peer.conn.recv(_READ_BYTES)
            if not data:
                raise ConnectionResetError("end of file")
            inbox = peer.inbox
            inbox += data
            offset = 0
            while len(inbox) - offset >= wire.HEADER_BYTES:
                end = offset + wire.HEADER_BYTES + wire.frame_length(bytes(inbox[offset : offset + wire.HEADER_BYTES]))
                if len(inbox) < end:
                    break
                number, rows = orjson.loads(memoryview(inbox)[offset + wire.HEADER_BYTES : end])
                offset = end
                self._submit(peer, number, rows)
            del inbox[:offset]
        except (OSError, ValueError):
            # The worker went away (or sent garbage); whatever it sent before is still committed and answered.
            self._selector.unregister(peer.conn)
            with self._lock:
                self._connections.pop(peer.conn, None)
            self._commits.depth_changed.set()  # the next connection in line may now be the one told

    def _submit(self, peer: _Peer, number: int, rows: list[wire.Row]) -> None:
        def deliver(outcome: Any) -> None:  # on the writer thread, after COMMIT; sent by _send_answers
            if isinstance(outcome, BaseException):
                peer.outbox.append(_refusal(number, outcome, self._commits.take()))
            else:
                peer.outbox.append(wire.answer(number, outcome, self._commits.take()))
            self._waiting[peer] = None

        try:
            table_rows = [wire.table_row(row) for row in rows]
            if not table_rows:
                peer.send(wire.answer(number, [], self._commits.take()))
                return
            self._writer.submit(table_rows, deliver)
        except Exception as exc:  # refused at once (queue full, closing) or rows that are not events
            peer.send(_refusal(number, exc, self._commits.take()))

    def _send_answers(self) -> None:
        """After each transaction, on the writer thread: each connection's answers in one write."""
        waiting, self._waiting = self._waiting, {}
        for peer in waiting:
            answers, peer.outbox = peer.outbox, []
            peer.send(answers[0] if len(answers) == 1 else b"".join(answers))

    def close(self) -> None:
        """Stop taking connections, then hang up on the workers (after the writer has drained)."""
        self._closed = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")  # the reading thread leaves its select
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


def _refusal(number: int, exc: BaseException, commits: wire.Commits) -> bytes:
    kind = next((k for cls, k in _REFUSALS if isinstance(exc, cls)), "unavailable")
    return wire.refusal(number, kind, f"{type(exc).__name__}: {exc}", commits)


def _watch_parent(stop: threading.Event) -> None:
    """The supervisor holds our stdin open: end of file means the service is gone, so drain and exit."""
    with contextlib.suppress(OSError):
        # os.read, not sys.stdin: a daemon thread blocked in a buffered read aborts the interpreter's exit.
        while os.read(0, 4096):
            pass
    stop.set()


def run_writer(socket_path: Path, writer: RowWriter, commits: ReportedCommits, drain_s: float) -> bool:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    threading.Thread(target=_watch_parent, args=(stop,), name="parent-watch", daemon=True).start()
    server = WriterServer(writer, commits)
    server.listen(socket_path)
    stop.wait()
    # Requests already read are committed and answered; any after this are refused as "closed".
    drained = writer.close(drain_s)
    server.close()
    return drained


class WriterSupervisor:
    """Starts the writer process, restarts it when it dies, stops it (draining) on stop()."""

    def __init__(self, env: dict[str, str] | None = None, *, log: Any = None, restart_delay_s: float = 0.2) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="telemetry-writer-"))
        self.socket_path = self._folder / "writer.sock"
        self._env = env
        self._log = log
        self._restart_delay_s = restart_delay_s
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._watcher = threading.Thread(target=self._watch, name="writer-supervisor", daemon=True)
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, ready_timeout_s: float = 30.0) -> None:
        self._spawn()
        self.wait_ready(ready_timeout_s)
        self._watcher.start()

    def _spawn(self) -> None:
        with self._lock:
            self._process = subprocess.Popen(
                [sys.executable, "-m", MODULE, str(self.socket_path)],
                stdin=subprocess.PIPE,
                env=self._env,
                # Its own session: a Ctrl-C or a signal to the service's process group reaches the service,
                # which drains its requests first and then stops the writer itself.
                start_new_session=True,
            )

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            process = self._process
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"the writer process exited with {process.returncode} while starting")
            with socket.socket(socket.AF_UNIX) as probe, contextlib.suppress(OSError):
                probe.connect(str(self.socket_path))
                return
            time.sleep(0.02)
        raise TimeoutError(f"the writer process did not listen on {self.socket_path} in {timeout_s:g} s")

    def _watch(self) -> None:
        while not self._stopping.is_set():
            process = self._process
            if process is None:
                return
            returncode = process.wait()
            if self._stopping.is_set():
                return
            if process.stdin:
                process.stdin.close()
            if self._log is not None:
                self._log.warning("writer_process_exited", pid=process.pid, returncode=returncode, restarting=True)
            time.sleep(self._restart_delay_s)
            if self._stopping.is_set():
                return
            self.restarts += 1
            self._spawn()
            with contextlib.suppress(RuntimeError, TimeoutError):
                self.wait_ready(30.0)

    def stop(self, timeout_s: float = 20.0) -> bool:
        """Ask the writer to commit what it holds and exit; True when it did so in time."""
        self._stopping.set()
        with self._lock:
            process = self._process
        clean = True
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                clean = process.wait(timeout_s + 5) == 0
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                clean = False
        if process is not None and process.stdin:
            with contextlib.suppress(OSError):
                process.stdin.close()
        self.socket_path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self._folder.rmdir()
        return clean
