"""The SQLite write path under the group-commit writer: big batches, known ids among new ones, a busy lock."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from app.repository.port import AddStatus
from app.repository.sqlite import SqliteEventRepository
from tests.integration.repository_contract import make_event


def test_add_waits_out_a_write_lock_held_longer_than_one_busy_timeout(tmp_path: Path) -> None:
    repo = SqliteEventRepository(tmp_path / "events.db", busy_timeout_ms=200, checkpoint_interval_s=None)
    other = sqlite3.connect(repo.path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # as a second worker's long transaction would
    released = threading.Timer(0.5, other.execute, args=("COMMIT",))
    released.start()
    started = time.monotonic()
    try:
        (result,) = repo.add([make_event()])
    finally:
        released.join()
        other.close()
        repo.close()
    assert result.status is AddStatus.ACCEPTED
    assert time.monotonic() - started >= 0.4  # it did wait for the lock, more than one busy_timeout


def test_a_large_add_stores_every_event_in_order_in_one_transaction(tmp_path: Path) -> None:
    repo = SqliteEventRepository(tmp_path / "events.db", checkpoint_interval_s=None)
    events = [make_event(user_id=f"u{i}") for i in range(777)]  # spans several multi-row INSERT sizes
    try:
        results = repo.add(events)
        stored = sqlite3.connect(repo.path).execute("SELECT event_id, user_id FROM events ORDER BY seq").fetchall()
    finally:
        repo.close()
    assert [r.status for r in results] == [AddStatus.ACCEPTED] * 777
    assert [r.event for r in results] == events
    assert stored == [(str(e.event_id), e.user_id) for e in events]


def test_known_ids_among_new_ones_are_told_apart_and_new_ones_stored_once(tmp_path: Path) -> None:
    repo = SqliteEventRepository(tmp_path / "events.db", checkpoint_interval_s=None)
    known = make_event()
    try:
        repo.add([known])
        fresh = [make_event() for _ in range(40)]
        changed = make_event(event_id=known.event_id, action="other")
        results = repo.add([*fresh[:20], known, *fresh[20:], changed])
        count = sqlite3.connect(repo.path).execute("SELECT COUNT(*) FROM events").fetchone()[0]
    finally:
        repo.close()
    statuses = [r.status for r in results]
    assert statuses == [AddStatus.ACCEPTED] * 20 + [AddStatus.DUPLICATE] + [AddStatus.ACCEPTED] * 20 + [
        AddStatus.CONFLICT
    ]
    assert results[-1].conflicting_fields == ("action",)
    assert count == 41
