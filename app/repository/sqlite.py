"""EventRepository on SQLite: connections and pragmas, schema and migrations, and the adapter itself.

One file in WAL mode: a connection per thread, one writer at a time. Raw parameterised SQL over the
driver, no ORM writes onto the frozen domain event. sqlite3's exceptions are translated at each public
method into the port's StorageUnavailable / StorageError.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar
from urllib.parse import quote
from uuid import UUID

from app.json_codec import dump_json, load_json
from app.models import UserActionEvent
from app.repository import sqlite_removal as removal
from app.repository.port import (
    AddResult,
    AddStatus,
    Cursor,
    Erasure,
    EventFilter,
    EventPage,
    EventQuery,
    EventRow,
    EventStats,
    Order,
    StatsQuery,
    StorageError,
    StorageUnavailable,
    classify_existing,
    iterate_pages,
)
from app.repository.sqlite_wal import CheckpointMode
from app.utc_text import from_utc_text, to_utc_text

SynchronousMode = Literal["FULL", "NORMAL"]


# Each entry moves the schema one version up. Never edit a released entry: append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE events (
        seq         INTEGER PRIMARY KEY,      -- insertion order, internal
        event_id    TEXT NOT NULL UNIQUE,     -- canonical lower-case UUID text
        user_id     TEXT NOT NULL,
        action      TEXT NOT NULL,
        source      TEXT NOT NULL,
        timestamp   TEXT NOT NULL,            -- UTC, fixed width: 2026-01-02T03:04:05.000006Z
        received_at TEXT NOT NULL,            -- same format, server clock
        sent_at     TEXT,                     -- same format, client clock at send time, optional
        metadata    TEXT NOT NULL             -- JSON object
    );
    CREATE INDEX events_timestamp ON events (timestamp, event_id);
    CREATE INDEX events_user_timestamp ON events (user_id, timestamp, event_id);
    CREATE INDEX events_action_timestamp ON events (action, timestamp, event_id);
    CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'events are immutable: UPDATE refused'); END;
    CREATE TRIGGER events_refuse_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'events are immutable: DELETE refused'); END;
    """,
    # v2: removal by retention and per-user erasure. A DELETE passes only while a removal marker row exists,
    # which the removal path inserts and deletes again inside its own transaction: no other connection ever
    # sees it, so any other DELETE is still refused. Erasures are recorded append-only, by digest.
    """
    CREATE TABLE removal_marker (
        id      INTEGER PRIMARY KEY CHECK (id = 1),
        purpose TEXT NOT NULL CHECK (purpose IN ('erasure', 'retention'))
    );
    DROP TRIGGER events_refuse_delete;
    CREATE TRIGGER events_refuse_delete BEFORE DELETE ON events
    WHEN NOT EXISTS (SELECT 1 FROM removal_marker)
    BEGIN SELECT RAISE(ABORT, 'events are immutable: DELETE refused'); END;
    CREATE TABLE erasures (
        seq            INTEGER PRIMARY KEY,
        erased_at      TEXT NOT NULL,            -- UTC, the events' fixed-width format
        user_id_sha256 TEXT NOT NULL,            -- hex SHA-256 of the user_id, never the id itself
        events_removed INTEGER NOT NULL,
        key_name       TEXT NOT NULL,            -- the API key that asked, or 'cli'
        suppressed     INTEGER NOT NULL          -- 1: later events of this user are refused
    );
    CREATE TRIGGER erasures_refuse_update BEFORE UPDATE ON erasures
    BEGIN SELECT RAISE(ABORT, 'erasures are append-only: UPDATE refused'); END;
    CREATE TRIGGER erasures_refuse_delete BEFORE DELETE ON erasures
    BEGIN SELECT RAISE(ABORT, 'erasures are append-only: DELETE refused'); END;
    CREATE TABLE suppressed_users (
        user_id_sha256 TEXT PRIMARY KEY,
        since          TEXT NOT NULL
    );
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


def connect(
    path: Path,
    *,
    synchronous: SynchronousMode = "FULL",
    busy_timeout_ms: int = 5000,
    read_only: bool = False,
    create: bool = True,
) -> sqlite3.Connection:
    """Open a connection with the pragmas every connection of ours needs.

    create=False: a file that is not there is an error, not a new empty database.
    """
    if read_only:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None)
    elif not create:
        uri = f"file:{quote(str(path))}?mode=rw"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    if not read_only:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        # Checkpoints run from the writer between batches, never inside a request's commit.
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        # The multi-row INSERT ... ON CONFLICT keeps a statement journal: in memory, not a temp file
        # (a quarter of SQLite's CPU per event, batches of 100).
        conn.execute("PRAGMA temp_store = MEMORY")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to SCHEMA_VERSION; safe to call from several processes at once."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
        current = int(row[0])
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in _split_statements(MIGRATIONS[version - 1]):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                (version, datetime.now(UTC).isoformat()),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return SCHEMA_VERSION


def _split_statements(script: str) -> list[str]:
    """Split a migration on complete statements (triggers hold inner semicolons)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements


def open_database(
    path: Path, *, synchronous: SynchronousMode = "FULL", busy_timeout_ms: int = 5000
) -> sqlite3.Connection:
    """Connect and migrate: what a process does once at start-up."""
    conn = connect(path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms)
    migrate(conn)
    return conn


P = ParamSpec("P")
T = TypeVar("T")
_BROKEN_FILE = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def translate_errors(method: Callable[P, T]) -> Callable[P, T]:
    """sqlite3's exceptions as the port's: an operational failure (locked, read-only, disk full or I/O
    error, a file that cannot be opened) or a broken file (corrupt, not a database) is StorageUnavailable,
    anything else StorageError."""

    @functools.wraps(method)
    def translated(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(*args, **kwargs)
        except sqlite3.OperationalError as exc:
            raise StorageUnavailable(f"SQLite: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _BROKEN_FILE:
                raise StorageUnavailable(f"SQLite: the database file is broken: {exc}") from exc
            raise StorageError(f"SQLite: {type(exc).__name__}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite: {type(exc).__name__}: {exc}") from exc

    return translated


_COLUMNS = "event_id, user_id, action, source, timestamp, received_at, sent_at, metadata"
_INSERT = f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING"
_ROW_PARAMS = "(?, ?, ?, ?, ?, ?, ?, ?)"


def _insert_statement(rows: int) -> str:
    values = ", ".join([_ROW_PARAMS] * rows)
    return f"INSERT INTO events ({_COLUMNS}) VALUES {values} ON CONFLICT (event_id) DO NOTHING"


# Rows per multi-row INSERT: powers of two, so a few cached statements cover any batch.
_CHUNKS = tuple(2**k for k in range(9, -1, -1))  # 512 ... 1
_INSERTS = {n: _insert_statement(n) for n in _CHUNKS}


def _insert_rows(conn: sqlite3.Connection, rows: Sequence[TableRow]) -> int:
    """Insert rows, skipping known event_ids; returns how many were new.

    Multi-row INSERTs, not executemany: the sqlite3 module releases the GIL around every statement step,
    and each time the writer thread takes it back it may wait for the event loop's switch interval. A few
    statements per commit instead of one per event keep that wait off every event.
    """
    params = [value for row in rows for value in row]
    before = conn.total_changes
    start = 0
    remaining = len(rows)
    for size in _CHUNKS:
        while remaining >= size:
            conn.execute(_INSERTS[size], params[start * 8 : (start + size) * 8])
            start += size
            remaining -= size
    return conn.total_changes - before


_BUCKET_PREFIX = {"hour": 13, "day": 10}  # length of '2026-01-02T03' and '2026-01-02'


# The events table's columns after seq, as stored: event_id, user_id, action, source, timestamp, received_at,
# sent_at (or None), metadata (JSON text). The writer process builds these from the workers' rows itself
# (writer_protocol.table_row), with no event in between.
TableRow = tuple[str, str, str, str, str, str, str | None, str]


def table_row(event: UserActionEvent) -> TableRow:
    return (
        str(event.event_id),
        event.user_id,
        event.action,
        event.source,
        to_utc_text(event.timestamp),
        to_utc_text(event.received_at),
        to_utc_text(event.sent_at) if event.sent_at else None,
        dump_json(dict(event.metadata)),  # a dict, not the read-only view: orjson writes it without a callback
    )


def table_event(row: Sequence[Any]) -> UserActionEvent:
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


# Both directions walk the same (…, timestamp, event_id) indexes, backwards for desc.
_ORDER_BY = {"asc": "timestamp, event_id", "desc": "timestamp DESC, event_id DESC"}


def _where(f: EventFilter, after: Cursor | None = None, order: Order = "asc") -> tuple[str, list[Any]]:
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
        clauses.append(f"(timestamp, event_id) {'<' if order == 'desc' else '>'} (?, ?)")
        params.extend([to_utc_text(after.timestamp), str(after.event_id)])
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class SqliteEventRepository:
    """EventRepository on one SQLite file in WAL mode: a connection per thread, one writer at a time."""

    @translate_errors
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
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file as opened
        migrate(self._connection())
        self._identity = _file_identity(path)
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
            # Only the first connection may create the file: later, a missing file is an outage to report.
            conn = connect(
                self.path,
                synchronous=self._synchronous,
                busy_timeout_ms=self._busy_timeout_ms,
                create=self._identity is None,
            )
            if self._wal_size_limit is not None:
                # Once a checkpoint lets the log start again, the file is cut back to this size.
                conn.execute(f"PRAGMA journal_size_limit = {int(self._wal_size_limit)}")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _check_file(self) -> None:
        """The file at our path is still the one we opened. Open connections go on using a deleted or
        replaced file (its inode), so a write would be acknowledged and lost, and reads would be stale."""
        try:
            identity = _file_identity(self.path)
        except FileNotFoundError:
            raise StorageUnavailable(
                f"the database file {self.path} is gone (deleted or moved): put it back, or restart the service"
            ) from None
        if identity != self._identity:
            raise StorageUnavailable(
                f"the database file {self.path} was replaced by another file: restart the service to use it"
            )

    @translate_errors
    def add(self, events: Sequence[UserActionEvent]) -> list[AddResult]:
        if self.add_new([table_row(e) for e in events]):  # the common case: every event is new
            return [AddResult(AddStatus.ACCEPTED, event) for event in events]
        # Some event_id is known already: start again, one event at a time, to tell which.
        conn = self._write_connection()
        self._begin_write(conn)
        try:
            results = self._insert_one_by_one(conn, events)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return results

    @translate_errors
    def add_new(self, rows: Sequence[TableRow]) -> bool:
        """add() for rows already in the table's form, when every event_id is new: True, committed.

        False when some event_id is known already: nothing is written, and add() of the same events tells
        which are duplicates and which conflicts (rare: a client's retry). The writer process's path.
        """
        self._check_file()
        conn = self._write_connection()
        self._begin_write(conn)
        try:
            if _insert_rows(conn, rows) == len(rows):
                conn.execute("COMMIT")
                return True
            conn.execute("ROLLBACK")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return False

    def _insert_one_by_one(self, conn: sqlite3.Connection, events: Sequence[UserActionEvent]) -> list[AddResult]:
        """Retries and conflicts: each event on its own, to tell which are new, duplicates or conflicts."""
        results: list[AddResult] = []
        for event in events:
            if conn.execute(_INSERT, table_row(event)).rowcount == 1:
                results.append(AddResult(AddStatus.ACCEPTED, event))
                continue
            row = conn.execute(f"SELECT {_COLUMNS} FROM events WHERE event_id = ?", (str(event.event_id),)).fetchone()
            results.append(classify_existing(event, table_event(row)))
        return results

    def _write_connection(self) -> sqlite3.Connection:
        conn = self._connection()
        if not getattr(self._local, "write_cache", False):
            # The writing connection keeps the hot index pages (one leaf per user, per action, the right edges)
            # in memory, so inserts into a table of millions of rows do not re-read them from the OS each time.
            conn.execute(f"PRAGMA cache_size = -{_WRITE_CACHE_KIB}")
            self._local.write_cache = True
        return conn

    def _begin_write(self, conn: sqlite3.Connection) -> None:
        """Take the write lock. Another process (a second worker) may hold it: wait busy_timeout, a few times over."""
        for attempt in range(_LOCK_ATTEMPTS):
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if attempt == _LOCK_ATTEMPTS - 1 or not _is_busy(exc):
                    raise

    @translate_errors
    def get(self, event_id: UUID) -> UserActionEvent | None:
        self._check_file()
        row = (
            self._connection().execute(f"SELECT {_COLUMNS} FROM events WHERE event_id = ?", (str(event_id),)).fetchone()
        )
        return table_event(row) if row else None

    @translate_errors
    def query(self, q: EventQuery) -> EventPage:
        self._check_file()
        where, params = _where(q.filter, q.after, q.order)
        rows = (
            self._connection()
            .execute(
                f"SELECT {_COLUMNS} FROM events{where} ORDER BY {_ORDER_BY[q.order]} LIMIT ?",
                [*params, q.limit + 1],
            )
            .fetchall()
        )
        items = [table_event(r) for r in rows[: q.limit]]
        more = len(rows) > q.limit
        next_cursor = Cursor(items[-1].timestamp, items[-1].event_id) if more and items else None
        return EventPage(items, next_cursor)

    def iter_events(self, q: EventQuery) -> Iterator[UserActionEvent]:
        return iterate_pages(self, q)

    @translate_errors
    def stats(self, q: StatsQuery) -> EventStats:
        self._check_file()
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
                f"SELECT substr(timestamp, 1, {width}) AS b, COUNT(*) FROM events{where} GROUP BY b ORDER BY b LIMIT ?",
                [*params, limit],
            ).fetchall()
        finally:
            conn.execute("COMMIT")
        fmt = "%Y-%m-%dT%H" if q.bucket == "hour" else "%Y-%m-%d"
        by_bucket = [(from_utc_text(_bucket_text(b, fmt)), n) for b, n in buckets]
        return EventStats(sum(by_action.values()), by_action, by_source, by_bucket)

    @translate_errors
    def check_writable(self) -> None:
        self._check_file()
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("SELECT 1 FROM events LIMIT 0")  # the schema is there (not dropped by hand)
        finally:
            conn.execute("ROLLBACK")

    def iter_rows(self, f: EventFilter, chunk_rows: int) -> Iterator[list[EventRow]]:
        # A connection of the export's own: a streamed response pulls chunks from changing threads, and the
        # read transaction (one snapshot) must not be shared with other requests on a per-thread connection.
        where, params = _where(f)
        try:
            conn = connect(self.path, read_only=True, busy_timeout_ms=self._busy_timeout_ms)
            try:
                conn.execute("BEGIN")
                cursor = conn.execute(f"SELECT {_COLUMNS} FROM events{where} ORDER BY timestamp, event_id", params)
                while rows := cursor.fetchmany(chunk_rows):
                    yield rows
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise StorageError(f"{type(exc).__name__}: {exc}") from exc

    @translate_errors
    def erase_user(self, user_id: str, *, key_name: str, suppress: bool, at: datetime) -> Erasure:
        return removal.erase_user(
            self._connection(), self._begin_write, user_id, key_name=key_name, suppress=suppress, at=at
        )

    @translate_errors
    def erasures(self) -> list[Erasure]:
        return removal.erasures(self._connection())

    @translate_errors
    def suppressed_users(self) -> frozenset[str]:
        return removal.suppressed_users(self._connection())

    @translate_errors
    def remove_before(self, cutoff: datetime, max_rows: int) -> int:
        return removal.remove_before(self._connection(), self._begin_write, cutoff, max_rows)

    @translate_errors
    def count_before(self, cutoff: datetime) -> int:
        return removal.count_before(self._connection(), cutoff)

    @translate_errors
    def oldest_timestamp(self) -> datetime | None:
        return removal.oldest_timestamp(self._connection())

    def retention_lock(self) -> AbstractContextManager[bool]:
        # One writer at a time already: passes of two processes on one file take turns chunk by chunk.
        return contextlib.nullcontext(True)

    @translate_errors
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
            except StorageError:
                continue  # busy or closing: the next round tries again

    def close(self) -> None:
        self._stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=5)
        with contextlib.suppress(StorageError):  # another process may hold it; the WAL waits for the next one
            self.checkpoint("TRUNCATE")
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()


_LOCK_ATTEMPTS = 4


def _file_identity(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


_WRITE_CACHE_KIB = 64 * 1024


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(exc)


def _bucket_text(prefix: str, fmt: str) -> str:
    moment = datetime.strptime(prefix, fmt)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
