"""Storage faults are reported honestly and recovered from: a lock held elsewhere, a full disk, a deleted,
replaced or broken database file. Each answer is a 503 problem with Retry-After, never a 500, and /readyz
says what is wrong while it lasts.
"""

from __future__ import annotations

import resource
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.problems import assert_problem
from tests.support.server import ServerProcess

EVENT = {"user_id": "u-1", "action": "click", "source": "web"}

_HOLD_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()  # until the test closes our stdin
conn.execute("ROLLBACK")
"""


def _post_together(base_url: str, count: int) -> list[tuple[float, httpx.Response]]:
    """`count` POSTs sent at once; each answer with the seconds it took."""
    barrier = threading.Barrier(count)
    answers: list[tuple[float, httpx.Response]] = []
    lock = threading.Lock()

    def post(n: int) -> None:
        with httpx.Client(base_url=base_url, timeout=60) as http:
            barrier.wait()
            t0 = time.perf_counter()
            response = http.post("/v1/events", json={**EVENT, "user_id": f"u-{n}"})
            with lock:
                answers.append((time.perf_counter() - t0, response))

    threads = [threading.Thread(target=post, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return answers


def test_a_lock_held_by_another_process_fails_the_queued_requests_together(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    busy_ms = 300
    server = ServerProcess(f"sqlite:///{db}", env={"TELEMETRY_SQLITE_BUSY_TIMEOUT_MS": str(busy_ms)}).wait_ready()
    try:
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLD_LOCK, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "locked"
            answers = _post_together(server.base_url, 20)
            ready_while_locked = server.client.get("/readyz")
        finally:
            assert holder.stdin is not None
            holder.stdin.close()
            holder.wait(10)
        assert len(answers) == 20
        for _, response in answers:
            assert_problem(response, 503)
            assert response.headers["retry-after"]
        # The writer waits for the lock a few busy timeouts, then fails everything it holds at once. Request
        # by request, the last of 20 would answer after 20 such waits (here ~24 s); together, after one or two.
        slowest = max(seconds for seconds, _ in answers)
        one_wait_s = 4 * busy_ms / 1000
        assert slowest < 3 * one_wait_s + 1.0, sorted(round(s, 2) for s, _ in answers)
        assert_problem(ready_while_locked, 503)
        # Lock released: the service takes writes again, and /readyz says ready.
        assert server.client.post("/v1/events", json=EVENT).status_code == 201
        assert server.client.get("/readyz").status_code == 200
    finally:
        server.terminate()


def _process_tree(pid: int) -> list[int]:
    """The server and its child processes (the writer process, when it runs one)."""
    found, todo = [pid], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").iterdir():
            children = [int(c) for c in (task / "children").read_text().split()]
            found += children
            todo += children
    return found


# off: the writer thread of the server process writes; on: the writer process does.
@pytest.mark.parametrize("writer_process", ["off", "on"])
def test_readyz_reports_commits_failing_on_a_full_disk_and_recovers(tmp_path: Path, writer_process: str) -> None:
    db = tmp_path / "events.db"
    server = ServerProcess(f"sqlite:///{db}", env={"TELEMETRY_SQLITE_WRITER_PROCESS": writer_process}).wait_ready()
    try:
        _full_disk(server)
    finally:
        server.terminate()


def _full_disk(server: ServerProcess) -> None:
    assert server.client.post("/v1/events", json=EVENT).status_code == 201
    # The file-size limit of the server process stands in for a full disk: SQLite's writes past it fail
    # (EFBIG; Python ignores SIGXFSZ), while taking the write lock, all the old /readyz checked, still works.
    writers = _process_tree(server.proc.pid)
    for pid in writers:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
    try:
        metadata = {"blob": "x" * 20_000}
        failed = assert_problem(server.client.post("/v1/events", json={**EVENT, "metadata": metadata}), 503)
        ready = assert_problem(server.client.get("/readyz"), 503)
        assert "last commit failed" in ready["detail"]
        assert failed["detail"].split(": ")[-1] in ready["detail"]
    finally:
        for pid in writers:
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    # Space again: the next commit succeeds, and /readyz follows the writer back to ready.
    assert server.client.post("/v1/events", json=EVENT).status_code in (200, 201)
    assert server.client.get("/readyz").status_code == 200


def _assert_reads_unavailable(server: ServerProcess) -> None:
    for path in ("/v1/events", "/v1/stats", "/v1/events/00000000-0000-4000-8000-000000000001", "/readyz"):
        response = server.client.get(path)
        assert_problem(response, 503)
        assert response.headers["retry-after"]


def test_a_deleted_database_file_is_reported_and_never_recreated(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    server = ServerProcess(f"sqlite:///{db}").wait_ready()
    try:
        assert server.client.post("/v1/events", json=EVENT).status_code == 201
        assert server.client.get("/v1/events").status_code == 200
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        _assert_reads_unavailable(server)
        assert_problem(server.client.post("/v1/events", json=EVENT), 503)
        assert not db.exists(), "a read or write created a new, empty database in place of the deleted one"
    finally:
        server.terminate()


def test_a_replaced_database_file_is_reported(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    server = ServerProcess(f"sqlite:///{db}").wait_ready()
    try:
        assert server.client.post("/v1/events", json=EVENT).status_code == 201
        other = tmp_path / "other.db"
        sqlite3.connect(other).close()
        other.replace(db)  # same path, another file: our open connections still write to the old one
        ready = server.client.get("/readyz")
        assert "replaced" in assert_problem(ready, 503)["detail"]
        _assert_reads_unavailable(server)
    finally:
        server.terminate()


def test_a_broken_store_answers_503_not_500(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    server = ServerProcess(f"sqlite:///{db}").wait_ready()
    try:
        assert server.client.post("/v1/events", json=EVENT).status_code == 201
        with sqlite3.connect(db) as conn:
            conn.execute("DROP TABLE events")  # what an operator's mistake or a bad restore leaves
        _assert_reads_unavailable(server)
        assert_problem(server.client.post("/v1/events", json=EVENT), 503)
    finally:
        server.terminate()
