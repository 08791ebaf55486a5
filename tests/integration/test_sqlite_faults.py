"""The SQLite adapter translates a broken file into the port's StorageUnavailable (503), not a driver error."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.models import UserActionEvent
from app.repository.port import EventQuery, StorageUnavailable
from app.repository.sqlite import SqliteEventRepository


def _event() -> UserActionEvent:
    now = datetime(2026, 5, 1, tzinfo=UTC)
    return UserActionEvent(
        event_id=uuid.uuid4(), user_id="u", action="a", source="s", timestamp=now, received_at=now, metadata={}
    )


def _in_new_thread(call: Callable[[], object]) -> BaseException | None:
    """Run call() on a thread of its own (so on a connection of its own); the exception it raised, if any."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    return raised[0] if raised else None


def test_a_file_overwritten_in_place_is_unavailable_not_a_driver_error(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    repo = SqliteEventRepository(path, checkpoint_interval_s=None)
    try:
        repo.add([_event()])
        repo.checkpoint("TRUNCATE")
        with path.open("r+b") as file:  # same file (same inode), no longer a database
            file.write(b"this is not a database".ljust(4096, b"\0"))
        raised = _in_new_thread(lambda: repo.query(EventQuery()))
        assert isinstance(raised, StorageUnavailable), repr(raised)
        assert "broken" in str(raised)
    finally:
        repo.close()


def test_a_missing_file_is_never_created_by_a_read(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    repo = SqliteEventRepository(path, checkpoint_interval_s=None)
    try:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        raised = _in_new_thread(lambda: repo.query(EventQuery()))
        assert isinstance(raised, StorageUnavailable), repr(raised)
        assert "gone" in str(raised)
        assert not path.exists()
        with pytest.raises(StorageUnavailable, match="gone"):
            repo.check_writable()
    finally:
        repo.close()
    assert not path.exists()
