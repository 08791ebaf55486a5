"""Removing events from SQLite: per-user erasure and retention, the only paths the schema lets delete.

The events table refuses DELETE unless a row exists in removal_marker. Each removal here inserts that row
after BEGIN IMMEDIATE and deletes it again before COMMIT, so it exists only inside the removal's own
transaction: SQLite has one writer at a time, and no other connection ever sees the marker.

secure_delete is on for an erasure: SQLite overwrites the removed rows (and their index entries) with
zeros in the pages it writes, instead of leaving them in free space. Those pages go to the WAL first; the
erasure then runs a TRUNCATE checkpoint, which copies them into the database file and empties the WAL, so
the erased values are gone from both files once erase_user returns (if long readers keep that checkpoint
from finishing, at the next TRUNCATE checkpoint: the service makes one when it stops). secure_delete
rather than incremental vacuum: it needs no auto_vacuum mode fixed at creation (existing files keep
working) and zeros the data in place, where a vacuum would only move free pages to the end of the file.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Literal

from app.repository.port import Erasure, user_digest
from app.utc_text import from_utc_text, to_utc_text

Purpose = Literal["erasure", "retention"]


@contextlib.contextmanager
def removal(conn: sqlite3.Connection, purpose: Purpose, begin: Callable[[sqlite3.Connection], None]) -> Iterator[None]:
    """One write transaction in which DELETE on events is allowed."""
    # Zeroing costs writes: an erasure needs it, retention (data past its period, not a person's) does not.
    conn.execute(f"PRAGMA secure_delete = {'ON' if purpose == 'erasure' else 'OFF'}")
    begin(conn)
    try:
        conn.execute("INSERT INTO removal_marker (id, purpose) VALUES (1, ?)", (purpose,))
        yield
        conn.execute("DELETE FROM removal_marker")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def erase_user(
    conn: sqlite3.Connection,
    begin: Callable[[sqlite3.Connection], None],
    user_id: str,
    *,
    key_name: str,
    suppress: bool,
    at: datetime,
) -> Erasure:
    digest = user_digest(user_id)
    with removal(conn, "erasure", begin):
        removed = conn.execute("DELETE FROM events WHERE user_id = ?", (user_id,)).rowcount
        conn.execute(
            "INSERT INTO erasures (erased_at, user_id_sha256, events_removed, key_name, suppressed)"
            " VALUES (?, ?, ?, ?, ?)",
            (to_utc_text(at), digest, removed, key_name, int(suppress)),
        )
        if suppress:
            conn.execute(
                "INSERT INTO suppressed_users (user_id_sha256, since) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (digest, to_utc_text(at)),
            )
    _truncate_wal(conn)
    return Erasure(at, digest, removed, key_name, suppress)


def _truncate_wal(conn: sqlite3.Connection, attempts: int = 5) -> bool:
    """Copy the WAL into the file and empty it, so the erased rows' old page images leave the WAL now.

    A reader in the middle of a long snapshot keeps the checkpoint from finishing: a few tries, then the
    pages wait for a later TRUNCATE checkpoint (the service makes one when it stops). True when done.
    """
    for attempt in range(attempts):
        with contextlib.suppress(sqlite3.OperationalError):
            row = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if row is not None and int(row[0]) == 0:  # (busy, log frames, checkpointed frames)
                return True
        time.sleep(0.05 * (attempt + 1))
    return False


def erasures(conn: sqlite3.Connection) -> list[Erasure]:
    rows = conn.execute(
        "SELECT erased_at, user_id_sha256, events_removed, key_name, suppressed FROM erasures ORDER BY seq"
    ).fetchall()
    return [Erasure(from_utc_text(r[0]), r[1], int(r[2]), r[3], bool(r[4])) for r in rows]


def suppressed_users(conn: sqlite3.Connection) -> frozenset[str]:
    return frozenset(r[0] for r in conn.execute("SELECT user_id_sha256 FROM suppressed_users"))


def remove_before(
    conn: sqlite3.Connection, begin: Callable[[sqlite3.Connection], None], cutoff: datetime, max_rows: int
) -> int:
    with removal(conn, "retention", begin):
        removed: int = conn.execute(
            "DELETE FROM events WHERE seq IN"
            " (SELECT seq FROM events WHERE timestamp < ? ORDER BY timestamp, event_id LIMIT ?)",
            (to_utc_text(cutoff), max_rows),
        ).rowcount
    return removed


def count_before(conn: sqlite3.Connection, cutoff: datetime) -> int:
    row = conn.execute("SELECT COUNT(*) FROM events WHERE timestamp < ?", (to_utc_text(cutoff),)).fetchone()
    return int(row[0])


def oldest_timestamp(conn: sqlite3.Connection) -> datetime | None:
    row = conn.execute("SELECT MIN(timestamp) FROM events").fetchone()
    return from_utc_text(row[0]) if row and row[0] else None
