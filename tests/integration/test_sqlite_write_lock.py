"""Another process holding the SQLite write lock delays a commit; it does not fail it."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from app.repository.events_repository import AddStatus, SqliteEventRepository
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
