"""Pragmas of the writing SQLite connection that the ingest path's speed depends on."""

from __future__ import annotations

from pathlib import Path

from app.repository.sqlite import connect

TEMP_STORE_MEMORY = 2


def test_a_writing_connection_keeps_its_statement_journal_in_memory(tmp_path: Path) -> None:
    conn = connect(tmp_path / "events.db")
    try:
        assert conn.execute("PRAGMA temp_store").fetchone()[0] == TEMP_STORE_MEMORY
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: durability is not traded for it
    finally:
        conn.close()
