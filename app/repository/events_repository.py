"""The storage port (EventRepository) and its SQLite adapter.

Every backend implements the same small, synchronous interface; tests/integration runs one contract suite
against each. Raw parameterised SQL over the driver: no ORM writes onto the frozen domain event.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Protocol
from uuid import UUID

from app.database.connection import SynchronousMode, connect, migrate
from app.json_codec import dump_json, load_json
from app.models import UserActionEvent, from_utc_text, to_utc_text
from app.repository.sqlite_wal import CheckpointMode


class AddStatus(StrEnum):
    ACCEPTED = "accepted"  # stored now
    DUPLICATE = "duplicate"  # same event_id, same fact: already stored, stored once
    CONFLICT = "conflict"  # same event_id, another fact: refused


@dataclass(frozen=True, slots=True)
class AddResult:
    status: AddStatus
    event: UserActionEvent  # the event as stored (for a duplicate or conflict: as first stored)
    conflicting_fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Cursor:
    """Position after the last item of a page, in (timestamp, event_id) order."""

    timestamp: datetime
    event_id: UUID


@dataclass(frozen=True, slots=True)
class EventFilter:
    user_id: str | None = None
    action: str | None = None
    source: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


@dataclass(frozen=True, slots=True)
class EventQuery:
    filter: EventFilter = field(default_factory=EventFilter)
    limit: int = 100
    after: Cursor | None = None


@dataclass(frozen=True, slots=True)
class EventPage:
    items: list[UserActionEvent]
    next_cursor: Cursor | None


Bucket = Literal["hour", "day"]


@dataclass(frozen=True, slots=True)
class StatsQuery:
    filter: EventFilter = field(default_factory=EventFilter)
    bucket: Bucket = "hour"
    max_buckets: int | None = None  # a backend may stop after max_buckets + 1: the caller refuses more


@dataclass(frozen=True, slots=True)
class EventStats:
    total: int
    by_action: dict[str, int]
    by_source: dict[str, int]
    by_bucket: list[tuple[datetime, int]]  # bucket start (UTC), count; ordered by time


class EventRepository(Protocol):
    """Where events are kept. Thread-safe: one instance serves the writer thread and the readers."""

    def add(self, events: Sequence[UserActionEvent]) -> list[AddResult]:
        """Store new events in one transaction; one result per event, in order."""
        ...

    def get(self, event_id: UUID) -> UserActionEvent | None: ...

    def query(self, q: EventQuery) -> EventPage: ...

    def iter_events(self, q: EventQuery) -> Iterator[UserActionEvent]:
        """Every event matching q.filter after q.after, in order, a page at a time (constant memory)."""
        ...

    def stats(self, q: StatsQuery) -> EventStats: ...

    def check_writable(self) -> None:
        """Raise when the store cannot take a write now."""
        ...

    def close(self) -> None: ...


def classify_existing(new: UserActionEvent, stored: UserActionEvent) -> AddResult:
    """What a second event with a known event_id is: the same fact again, or a conflicting one."""
    if new.same_fact_as(stored):
        return AddResult(AddStatus.DUPLICATE, stored)
    return AddResult(AddStatus.CONFLICT, stored, tuple(new.differing_fields(stored)))


def iterate_pages(repo: EventRepository, q: EventQuery) -> Iterator[UserActionEvent]:
    """iter_events for any backend with keyset pages: memory stays bounded by one page."""
    page_query = replace(q, limit=max(q.limit, 1000))
    while True:
        page = repo.query(page_query)
        yield from page.items
        if page.next_cursor is None:
            return
        page_query = replace(page_query, after=page.next_cursor)


_COLUMNS = "event_id, user_id, action, source, timestamp, received_at, sent_at, metadata"
_INSERT = f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING"
_ROW_PARAMS = "(?, ?, ?, ?, ?, ?, ?, ?)"


def _insert_statement(rows: int) -> str:
    values = ", ".join([_ROW_PARAMS] * rows)
    return f"INSERT INTO events ({_COLUMNS}) VALUES {values} ON CONFLICT (event_id) DO NOTHING"


# Rows per multi-row INSERT: powers of two, so a few cached statements cover any batch.
_CHUNKS = tuple(2**k for k in range(9, -1, -1))  # 512 ... 1
_INSERTS = {n: _insert_statement(n) for n in _CHUNKS}


def _insert_all(conn: sqlite3.Connection, events: Sequence[UserActionEvent]) -> int:
    """Insert events, skipping known event_ids; returns how many were new.

    Multi-row INSERTs, not executemany: the sqlite3 module releases the GIL around every statement step,
    and each time the writer thread takes it back it may wait for the event loop's switch interval. A few
    statements per commit instead of one per event keep that wait off every event.
    """
    params = [value for event in events for value in _row(event)]
    before = conn.total_changes
    start = 0
    remaining = len(events)
    for size in _CHUNKS:
        while remaining >= size:
            conn.execute(_INSERTS[size], params[start * 8 : (start + size) * 8])
            start += size
            remaining -= size
    return conn.total_changes - before


_BUCKET_PREFIX = {"hour": 13, "day": 10}  # length of '2026-01-02T03' and '2026-01-02'


def _row(event: UserActionEvent) -> tuple[Any, ...]:
    return (
        str(event.event_id),
        event.user_id,
        event.action,
        event.source,
        to_utc_text(event.timestamp),
        to_utc_text(event.received_at),
        to_utc_text(event.sent_at) if event.sent_at else None,
        dump_json(event.metadata),
    )


def _event(row: Sequence[Any]) -> UserActionEvent:
    return UserActionEvent(
        event_id=UUID(row[0]),
        user_id=row[1],
        action=row[2],
        source=row[3],
        timestamp=from_utc_text(row[4]),
        received_at=from_utc_text(row[5]),
        sent_at=from_utc_text(row[6]) if row[6] else None,
        metadata=load_json(row[7]),
    )


def _where(f: EventFilter, after: Cursor | None = None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column in ("user_id", "action", "source"):
        value = getattr(f, column)
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if f.since is not None:
        clauses.append("timestamp >= ?")
        params.append(to_utc_text(f.since))
    if f.until is not None:
        clauses.append("timestamp < ?")
        params.append(to_utc_text(f.until))
    if after is not None:
        clauses.append("(timestamp, event_id) > (?, ?)")
        params.extend([to_utc_text(after.timestamp), str(after.event_id)])
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class SqliteEventRepository:
    """EventRepository on one SQLite file in WAL mode: a connection per thread, one writer at a time."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: SynchronousMode = "FULL",
        busy_timeout_ms: int = 5000,
        checkpoint_interval_s: float | None = 1.0,
        wal_size_limit: int | None = None,
    ) -> None:
        self.path = path
        self._wal_size_limit = wal_size_limit
        self._synchronous: SynchronousMode = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        migrate(self._connection())
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if checkpoint_interval_s:
            # wal_autocheckpoint is off: checkpoints run here, beside the writer, never inside a commit.
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, args=(checkpoint_interval_s,), name="sqlite-checkpoint", daemon=True
            )
            self._checkpointer.start()

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, synchronous=self._synchronous, busy_timeout_ms=self._busy_timeout_ms)
            if self._wal_size_limit is not None:
                # Once a checkpoint lets the log start again, the file is cut back to this size.
                conn.execute(f"PRAGMA journal_size_limit = {int(self._wal_size_limit)}")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def add(self, events: Sequence[UserActionEvent]) -> list[AddResult]:
        conn = self._connection()
        if not getattr(self._local, "write_cache", False):
            # The writing connection keeps the hot index pages (one leaf per user, per action, the right edges)
            # in memory, so inserts into a table of millions of rows do not re-read them from the OS each time.
            conn.execute(f"PRAGMA cache_size = -{_WRITE_CACHE_KIB}")
            self._local.write_cache = True
        self._begin_write(conn)
        try:
            if _insert_all(conn, events) == len(events):  # the common case: every event is new
                conn.execute("COMMIT")
                return [AddResult(AddStatus.ACCEPTED, event) for event in events]
            # Some event_id is known already: start again, one event at a time, to tell which.
            conn.execute("ROLLBACK")
            self._begin_write(conn)
            results = self._insert_one_by_one(conn, events)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return results

    def _insert_one_by_one(self, conn: sqlite3.Connection, events: Sequence[UserActionEvent]) -> list[AddResult]:
        """Retries and conflicts: each event on its own, to tell which are new, duplicates or conflicts."""
        results: list[AddResult] = []
        for event in events:
            if conn.execute(_INSERT, _row(event)).rowcount == 1:
                results.append(AddResult(AddStatus.ACCEPTED, event))
                continue
            row = conn.execute(f"SELECT {_COLUMNS} FROM events WHERE event_id = ?", (str(event.event_id),)).fetchone()
            results.append(classify_existing(event, _event(row)))
        return results

    def _begin_write(self, conn: sqlite3.Connection) -> None:
        """Take the write lock. Another process (a second worker) may hold it: wait busy_timeout, a few times over."""
        for attempt in range(_LOCK_ATTEMPTS):
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if attempt == _LOCK_ATTEMPTS - 1 or not _is_busy(exc):
                    raise

    def get(self, event_id: UUID) -> UserActionEvent | None:
        row = (
            self._connection().execute(f"SELECT {_COLUMNS} FROM events WHERE event_id = ?", (str(event_id),)).fetchone()
        )
        return _event(row) if row else None

    def query(self, q: EventQuery) -> EventPage:
        where, params = _where(q.filter, q.after)
        rows = (
            self._connection()
            .execute(
                f"SELECT {_COLUMNS} FROM events{where} ORDER BY timestamp, event_id LIMIT ?",
                [*params, q.limit + 1],
            )
            .fetchall()
        )
        items = [_event(r) for r in rows[: q.limit]]
        more = len(rows) > q.limit
        next_cursor = Cursor(items[-1].timestamp, items[-1].event_id) if more and items else None
        return EventPage(items, next_cursor)

    def iter_events(self, q: EventQuery) -> Iterator[UserActionEvent]:
        return iterate_pages(self, q)

    def stats(self, q: StatsQuery) -> EventStats:
        where, params = _where(q.filter)
        conn = self._connection()
        width = _BUCKET_PREFIX[q.bucket]
        conn.execute("BEGIN")  # one snapshot for the three counts
        try:
            by_action = dict(
                conn.execute(f"SELECT action, COUNT(*) FROM events{where} GROUP BY action", params).fetchall()
            )
            by_source = dict(
                conn.execute(f"SELECT source, COUNT(*) FROM events{where} GROUP BY source", params).fetchall()
            )
            limit = -1 if q.max_buckets is None else q.max_buckets + 1
            buckets = conn.execute(
                f"SELECT substr(timestamp, 1, {width}) AS b, COUNT(*) FROM events{where} GROUP BY b ORDER BY b"
                " LIMIT ?",
                [*params, limit],
            ).fetchall()
        finally:
            conn.execute("COMMIT")
        fmt = "%Y-%m-%dT%H" if q.bucket == "hour" else "%Y-%m-%d"
        by_bucket = [(from_utc_text(_bucket_text(b, fmt)), n) for b, n in buckets]
        return EventStats(sum(by_action.values()), by_action, by_source, by_bucket)

    def check_writable(self) -> None:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")

    def checkpoint(self, mode: CheckpointMode = "PASSIVE", wait_ms: int | None = None) -> tuple[int, int, int]:
        """(busy, frames in the log, frames checkpointed), as SQLite reports them.

        wait_ms: how long RESTART/TRUNCATE may wait for readers (the busy timeout) instead of the usual one.
        """
        conn = self._connection()
        if wait_ms is not None:
            conn.execute(f"PRAGMA busy_timeout = {int(wait_ms)}")
        try:
            busy, log_frames, checkpointed = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        finally:
            if wait_ms is not None:
                conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        return int(busy), int(log_frames), int(checkpointed)

    def _checkpoint_loop(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.checkpoint("PASSIVE")
            except sqlite3.Error:
                continue  # busy or closing: the next round tries again

    def close(self) -> None:
        self._stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=5)
        with contextlib.suppress(sqlite3.Error):  # another process may hold it; the WAL waits for the next one
            self.checkpoint("TRUNCATE")
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()


_LOCK_ATTEMPTS = 4
_WRITE_CACHE_KIB = 64 * 1024


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(exc)


def _bucket_text(prefix: str, fmt: str) -> str:
    moment = datetime.strptime(prefix, fmt)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
