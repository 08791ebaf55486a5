"""`serve` on SQLite runs its group commits in one writer process: killed, it fails its pending requests
with 503 and comes back; stopped, it drains; one serves every worker; its metrics reach /metrics."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.ingest_load import IngestLoad, assert_all_acknowledged_stored, integrity_check, stored_events
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
StartServer = Callable[..., ServerProcess]
WRITER_MODULE = "app.commands.writer"


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        children = []
        # Every thread's list: the supervisor thread that restarts the writer is its parent task.
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children += (task / "children").read_text().split()
            except OSError:
                continue
        for child in map(int, children):
            found.append(child)
            todo.append(child)
    return found


def writer_pids(server: ServerProcess) -> list[int]:
    pids = []
    for pid in descendants(server.proc.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if WRITER_MODULE.encode() in cmdline:
            pids.append(pid)
    return pids


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def total(text: str, name: str) -> float:
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)


def db_path(server: ServerProcess) -> Path:
    return Path(server.database_url.removeprefix("sqlite:///"))


WRITER_ON = {"TELEMETRY_SQLITE_WRITER_PROCESS": "on"}


def test_kill_9_of_the_writer_fails_pending_requests_with_503_and_it_restarts_losing_nothing_acknowledged(
    start_server: StartServer,
) -> None:
    server = start_server(env=WRITER_ON)
    (first,) = writer_pids(server)
    with IngestLoad(server.base_url, clients=6) as load:
        load.wait_acknowledged(300)
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: bool(load.result.statuses.get(503)), 20, "no request was refused while the writer was down")
        wait_for(lambda: writer_pids(server) not in ([], [first]), 30, "the writer process was not restarted")
        after_restart = len(load.result.acknowledged)
        load.wait_acknowledged(after_restart + 300)  # the service takes writes again
        result = load.stop()

    assert not result.errors, result.errors[:5]  # never a dropped connection, never another status
    assert set(result.statuses) <= {200, 201, 503}, result.statuses
    assert integrity_check(db_path(server)) == "ok"
    assert_all_acknowledged_stored(db_path(server), result.acknowledged)
    exits = server.wait_for_log(lambda line: line.get("event") == "writer_process_exited")
    assert [(e["pid"], e["returncode"]) for e in exits] == [(first, -signal.SIGKILL)]
    assert server.client.get("/readyz").status_code == 200
    assert server.terminate() == 0


def test_sigterm_drains_the_service_then_the_writer_and_both_exit(start_server: StartServer) -> None:
    server = start_server(env=WRITER_ON)
    (writer,) = writer_pids(server)
    with IngestLoad(server.base_url, clients=6) as load:
        load.wait_acknowledged(300)
        server.proc.send_signal(signal.SIGTERM)
        result = load.stop()
    assert server.terminate() == 0
    wait_for(lambda: not Path(f"/proc/{writer}").exists(), 10, "the writer process outlived the service")
    assert_all_acknowledged_stored(db_path(server), result.acknowledged)
    assert all(status in (200, 201, 503) for status in result.statuses), result.statuses
    (stopped,) = server.wait_for_log(lambda line: line.get("event") == "writer_process_stopped")
    assert (stopped["pid"], stopped["drained"]) == (writer, True)


def test_kill_9_of_the_service_lets_the_writer_commit_what_it_holds_and_exit(start_server: StartServer) -> None:
    server = start_server(env=WRITER_ON)
    (writer,) = writer_pids(server)
    with IngestLoad(server.base_url, clients=6) as load:
        load.wait_acknowledged(300)
        server.proc.send_signal(signal.SIGKILL)
        result = load.stop()
    server.kill()
    # Its supervisor's pipe closed: the writer drains and exits rather than living on as an orphan.
    wait_for(lambda: not Path(f"/proc/{writer}").exists(), 20, "the writer process outlived the killed service")
    assert integrity_check(db_path(server)) == "ok"
    assert_all_acknowledged_stored(db_path(server), result.acknowledged)


def one_cpu() -> None:  # in the server's process before exec: the CPUs it may use are the ones it sees
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def test_auto_runs_a_writer_process_beside_one_worker_given_two_cpus_and_none_on_one(start_server: StartServer) -> None:
    assert len(os.sched_getaffinity(0)) >= 2, "this test needs a machine with two CPUs"
    two_cpus = start_server()
    try:
        assert len(writer_pids(two_cpus)) == 1
        assert (
            two_cpus.client.post("/v1/events", json={"user_id": "u", "action": "a", "source": "s"}).status_code == 201
        )
    finally:
        assert two_cpus.terminate() == 0
    one = start_server(preexec_fn=one_cpu)
    assert writer_pids(one) == []
    assert one.client.post("/v1/events", json={"user_id": "u", "action": "b", "source": "s"}).status_code == 201
    assert one.terminate() == 0


def test_off_runs_no_writer_process_even_for_two_workers(start_server: StartServer) -> None:
    two = start_server(env={"TELEMETRY_SQLITE_WRITER_PROCESS": "off"}, extra_args=["--workers", "2"])
    try:
        assert writer_pids(two) == []
    finally:
        assert two.terminate() == 0  # SIGTERM: the workers stop with it (a kill would leave them behind)


def test_two_workers_share_one_writer_process_whose_commits_reach_metrics_once(start_server: StartServer) -> None:
    server = start_server(extra_args=["--workers", "2"])  # auto: a writer process with two workers
    try:
        check_one_shared_writer(server)
    finally:
        assert server.terminate() == 0  # SIGTERM: the workers stop with it (a kill would leave them behind)


def check_one_shared_writer(server: ServerProcess) -> None:
    assert len(writer_pids(server)) == 1
    sent = 0
    for n in range(40):
        events = [
            {"event_id": str(uuid.uuid4()), "user_id": f"u{n}", "action": "click", "source": "web", "metadata": {}}
            for _ in range(n % 5 + 1)
        ]
        response = server.client.post("/v1/events/batch", json={"events": events})
        assert response.status_code == 200, response.text
        sent += len(events)
    assert len(stored_events(db_path(server))) == sent
    metrics = server.client.get("/metrics").text
    # Each transaction is reported to exactly one worker: the sum over workers is the writer's own count.
    assert total(metrics, "telemetry_commit_batch_size_sum") == sent
    assert 1 <= total(metrics, "telemetry_commit_batch_size_count") <= 40
    # The depth is pushed by the writer (a few times a second at most): it settles at an empty queue.
    wait_for(lambda: total(server.client.get("/metrics").text, "telemetry_write_queue_depth") == 0, 5, "depth")
