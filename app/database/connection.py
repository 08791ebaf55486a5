"""SQLite connections: URL parsing, pragmas, schema creation and migration with a recorded version."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

SynchronousMode = Literal["FULL", "NORMAL"]


class UnsupportedDatabaseUrl(ValueError):
    """The database URL names a backend this service does not speak."""


@dataclass(frozen=True, slots=True)
class DatabaseUrl:
    scheme: str  # "sqlite" or "postgresql"
    url: str
    sqlite_path: Path | None = None


def parse_database_url(url: str) -> DatabaseUrl:
    """Accepts sqlite:///relative.db, sqlite:////absolute.db and postgresql://... URLs."""
    if url.startswith("sqlite:///"):
        raw = url.removeprefix("sqlite:///")
        if not raw:
            raise UnsupportedDatabaseUrl("sqlite URL needs a file path: sqlite:///./data/telemetry.db")
        return DatabaseUrl("sqlite", url, Path(raw))
    if url.startswith(("postgresql://", "postgres://")):
        return DatabaseUrl("postgresql", url)
    raise UnsupportedDatabaseUrl(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://...")


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
    path: Path, *, synchronous: SynchronousMode = "FULL", busy_timeout_ms: int = 5000, read_only: bool = False
) -> sqlite3.Connection:
    """Open a connection with the pragmas every connection of ours needs."""
    if read_only:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    if not read_only:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        # Checkpoints run from the writer between batches, never inside a request's commit.
        conn.execute("PRAGMA wal_autocheckpoint = 0")
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
