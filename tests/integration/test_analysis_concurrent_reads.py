"""The engine's readers open the SQLite store concurrently (a reader thread per core, a connection per seq
range): none of them may fail because another one holds a WAL lock for a moment."""

from __future__ import annotations

import threading
from pathlib import Path

from analysis import connect
from analysis.load import store_batches
from tests.integration.analysis_support import default_params, simulate_into

READERS = 4
READS_EACH = 500  # without a busy timeout, about 1 read in 50 failed with "database is locked"


def test_concurrent_store_reads_wait_for_a_lock_instead_of_failing(tmp_path: Path) -> None:
    url = simulate_into(tmp_path / "events.db", default_params(events=2_000, users=30, days=2))
    db = connect(url)
    failures: list[str] = []
    rows: list[int] = []

    def read() -> None:
        for i in range(READS_EACH):
            try:
                with store_batches(db, db.sql.events_between, (i % 50, i % 50 + 20)) as batches:
                    rows.append(sum(batch.num_rows for batch in batches))
            except Exception as exc:  # every failure is collected and reported
                failures.append(str(exc).splitlines()[0])

    threads = [threading.Thread(target=read) for _ in range(READERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, f"{len(failures)} of {READERS * READS_EACH} reads failed: {failures[:3]}"
    assert len(rows) == READERS * READS_EACH
    assert any(rows)
