"""A 2xx means committed: shown by killing and stopping the real server under concurrent load.

Every test here drives `python -m app serve` over HTTP with a real SQLite file; the clients choose every
event_id, so the test knows exactly which events must be stored (those acknowledged) and which must not
(those refused with 503).
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.ingest_load import (
    IngestLoad,
    assert_all_acknowledged_stored,
    integrity_check,
    make_event,
    stored_events,
)
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
StartServer = Callable[..., ServerProcess]


def db_path(server: ServerProcess) -> Path:
    return Path(server.database_url.removeprefix("sqlite:///"))


def test_acknowledged_events_survive_kill_9_under_load(start_server: StartServer) -> None:
    acknowledged: dict[str, dict[str, object]] = {}
    for round_no in range(3):
        server = start_server()
        path = db_path(server)
        if round_no:  # the file the previous round's killed server left behind
            assert integrity_check(path) == "ok"
            assert_all_acknowledged_stored(path, acknowledged)
        with IngestLoad(server.base_url, clients=8) as load:
            load.wait_acknowledged(len(acknowledged) // 3 + 300)  # mid-load, well past the first commits
            server.proc.send_signal(signal.SIGKILL)
            result = load.stop()
        server.kill()
        assert result.errors, "the clients should have seen the server die"
        assert all(status in (200, 201) for status in result.statuses), result.statuses
        acknowledged.update(result.acknowledged)
        assert integrity_check(path) == "ok"
        assert_all_acknowledged_stored(path, acknowledged)

    server = start_server()  # recovery: the service starts on the crashed file and serves what was acknowledged
    some_id = next(iter(acknowledged))
    assert server.client.get(f"/v1/events/{some_id}").json()["metadata"] == acknowledged[some_id]["metadata"]
    assert len(acknowledged) > 900


def test_sigterm_under_load_commits_every_acknowledged_event_and_exits_0(start_server: StartServer) -> None:
    server = start_server(env={"TELEMETRY_SHUTDOWN_TIMEOUT_S": "10"})
    path = db_path(server)
    with IngestLoad(server.base_url, clients=8) as load:
        load.wait_acknowledged(500)
        server.proc.send_signal(signal.SIGTERM)
        try:
            code = server.proc.wait(timeout=10 + 5)  # the shutdown bound, plus process start-up slack
        finally:
            result = load.stop()
    assert code == 0, server.stderr[-20:]
    server.terminate()  # collects the remaining output
    stopped = [line for line in server.json_lines() if line["event"] == "service_stopped"]
    assert len(stopped) == 1
    assert stopped[0]["drained"] is True
    assert all(status in (200, 201) for status in result.statuses), result.statuses
    assert integrity_check(path) == "ok"
    assert_all_acknowledged_stored(path, result.acknowledged)
    wal = path.with_name(path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0, "the WAL should have been checkpointed into the database"


def test_full_write_queue_answers_503_with_retry_after_at_once(start_server: StartServer) -> None:
    # A queue of 4 events; the writer is made slow for real: another connection holds the SQLite write lock,
    # so the writer's transaction waits on busy_timeout while requests pile up behind it.
    server = start_server(env={"TELEMETRY_WRITE_QUEUE_MAX": "4", "TELEMETRY_SQLITE_BUSY_TIMEOUT_MS": "30000"})
    path = db_path(server)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    events = [make_event(0) for _ in range(20)]
    responses: dict[str, httpx.Response] = {}
    lock = threading.Lock()

    def post(event: dict[str, object]) -> None:
        with httpx.Client(base_url=server.base_url, timeout=60) as client:
            response = client.post("/v1/events", json=event)
        with lock:
            responses[str(event["event_id"])] = response

    threads = [threading.Thread(target=post, args=(e,), daemon=True) for e in events]
    try:
        for thread in threads:
            thread.start()
            time.sleep(0.01)
        # A few requests (one, more when the machine is loaded) are in the blocked transaction, 4 fill the
        # queue: the rest are refused while the lock is still held. Wait until no more answers come.
        deadline = time.monotonic() + 20
        settled_at, seen = time.monotonic(), -1
        while time.monotonic() < deadline and (len(responses) < 10 or time.monotonic() - settled_at < 1.0):
            if len(responses) != seen:
                settled_at, seen = time.monotonic(), len(responses)
            time.sleep(0.02)
        refused_while_locked = dict(responses)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    for thread in threads:
        thread.join(60)

    assert 10 <= len(refused_while_locked) <= 15
    for response in refused_while_locked.values():
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("write-queue-full")
    accepted = {event_id for event_id, r in responses.items() if r.status_code == 201}
    assert len(accepted) == 20 - len(refused_while_locked)
    assert {r.status_code for r in responses.values()} == {201, 503}
    assert set(stored_events(path)) == accepted  # every 2xx stored, no 503 stored
    metrics = server.client.get("/metrics").text
    assert f"telemetry_write_queue_full_total {float(len(refused_while_locked))}" in metrics
    assert "telemetry_write_queue_capacity 4.0" in metrics


def test_a_batch_larger_than_the_queue_is_taken_when_the_queue_is_empty(start_server: StartServer) -> None:
    # Otherwise such a batch would get "503, retry later" forever.
    server = start_server(env={"TELEMETRY_WRITE_QUEUE_MAX": "4"})
    response = server.client.post("/v1/events/batch", json={"events": [make_event(1) for _ in range(10)]})
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 10
