"""`python -m app serve --workers 2`: both workers write to one SQLite file, /metrics sums over both."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.support.ingest_load import IngestLoad, integrity_check, stored_events
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
StartServer = Callable[..., ServerProcess]
INGEST_ROUTES = ("/v1/events", "/v1/events/batch")


def total(text: str, name: str, **labels: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def requests_answered_by_each_worker(
    metrics_dir: Path, scratch: Path, routes: tuple[str, ...] = INGEST_ROUTES
) -> dict[str, float]:
    """Read each worker's own counter file on its own: how many requests to `routes` that process answered."""
    answered = {}
    for counter_file in metrics_dir.glob("counter_*.db"):
        alone = scratch / counter_file.stem
        shutil.rmtree(alone, ignore_errors=True)
        alone.mkdir(parents=True)
        shutil.copy(counter_file, alone)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))  # type: ignore[no-untyped-call]
        answered[counter_file.stem] = sum(
            sample.value
            for family in registry.collect()
            for sample in family.samples
            if sample.name == "http_requests_total" and sample.labels["route"] in routes
        )
    return answered


def test_two_workers_store_every_event_and_metrics_sum_over_both(start_server: StartServer, tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale file of an earlier run")  # wiped at start
    server = start_server(
        env={"TELEMETRY_METRICS_MULTIPROC_DIR": str(metrics_dir)},
        extra_args=["--workers", "2"],
    )
    # readyz answers as soon as one worker is up: wait, on fresh connections, until both have answered.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        httpx.get(f"{server.base_url}/healthz", headers={"Connection": "close"})
        answered = requests_answered_by_each_worker(metrics_dir, tmp_path / "warm", routes=("/healthz",))
        if len(answered) == 2 and all(n > 0 for n in answered.values()):
            break
        time.sleep(0.05)
    with IngestLoad(server.base_url, clients=8) as load:
        load.wait_acknowledged(4000)
    result = load.stop()

    # Two processes, one SQLite file: writes wait for each other, none fails ("database is locked" would be a 503).
    assert result.errors == []
    assert set(result.statuses) <= {200, 201}, result.statuses
    path = Path(server.database_url.removeprefix("sqlite:///"))
    assert set(stored_events(path)) == set(result.acknowledged)
    assert integrity_check(path) == "ok"

    per_worker = requests_answered_by_each_worker(metrics_dir, tmp_path)
    assert len(per_worker) == 2, per_worker
    assert all(n > 0 for n in per_worker.values()), per_worker  # both workers took part
    requests = sum(result.statuses.values())
    for _ in range(4):  # whichever worker answers the scrape reports the sum over both
        text = server.client.get("/metrics").text
        assert total(text, "telemetry_user_actions_total") == len(result.acknowledged)
        ingest = sum(total(text, "http_requests_total", route=route) for route in INGEST_ROUTES)
        assert ingest == requests
        assert total(text, "telemetry_write_queue_capacity") == 2 * 10_000  # livesum over the live workers

    assert server.terminate() == 0
    assert not list(metrics_dir.glob("gauge_livesum_*.db")), "exited workers' live gauges should be marked dead"


def listening_sockets(port: int) -> int:
    """TCP sockets in LISTEN state on `port`, from the kernel's table (/proc/net/tcp: state 0A)."""
    count = 0
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        for line in table.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            count += state == "0A" and int(local.rsplit(":", 1)[1], 16) == port
    return count


def test_connections_opened_at_once_are_shared_between_the_workers(start_server: StartServer, tmp_path: Path) -> None:
    """A client pool (a load balancer, wrk) opens its keep-alive connections in one burst. On one shared
    listening socket the worker that wakes first accepts the whole burst (1 of 32 went to the other worker
    here), and keeps it: N workers would do the work of one. Each worker listens on its own SO_REUSEPORT
    socket instead, and the kernel spreads the connections over them."""
    metrics_dir = tmp_path / "metrics"
    server = start_server(env={"TELEMETRY_METRICS_MULTIPROC_DIR": str(metrics_dir)}, extra_args=["--workers", "2"])
    port = server.port
    deadline = time.monotonic() + 30
    while listening_sockets(port) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # until the second worker listens too (before, the first rightly takes everything)
    assert listening_sockets(port) == 2, "each worker should listen on a socket of its own"
    before = requests_answered_by_each_worker(metrics_dir, tmp_path / "before", routes=("/healthz",))
    connections = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(32)]
    try:
        for conn in connections:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        for conn in connections:
            assert conn.recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        for conn in connections:
            conn.close()
    deadline = time.monotonic() + 10
    while True:  # a worker counts a request just after its response has gone out
        answered = requests_answered_by_each_worker(
            metrics_dir, tmp_path / f"after-{time.monotonic_ns()}", ("/healthz",)
        )
        per_worker = {pid: n - before.get(pid, 0.0) for pid, n in answered.items()}
        if sum(per_worker.values()) >= 32 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(per_worker) == 2, per_worker
    assert sum(per_worker.values()) == 32, per_worker
    # Spread by a hash of each connection's addresses: 32 fall 16 ± 3 either way, rarely fewer than 8.
    assert min(per_worker.values()) >= 8, per_worker


def test_a_worker_killed_is_replaced_on_a_listening_socket_of_its_own(start_server: StartServer) -> None:
    """The replacement worker binds the shared port again (the supervisor's socket holds it); every new
    connection, whichever socket the kernel gives it to, is answered."""
    server = start_server(extra_args=["--workers", "2"])
    port = server.port
    deadline = time.monotonic() + 30
    while listening_sockets(port) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = _workers(server.proc.pid)
    assert len(workers) == 2, workers
    os.kill(workers[0], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        alive = _workers(server.proc.pid)
        if workers[0] not in alive and len(alive) == 2 and listening_sockets(port) == 2:
            break
        time.sleep(0.05)
    assert listening_sockets(port) == 2, "the replacement worker should listen again"
    for n in range(20):  # fresh connections, spread over both listening sockets: every one answered
        answer = httpx.post(
            f"{server.base_url}/v1/events",
            json={"user_id": f"u{n}", "action": "click", "source": "web"},
            headers={"Connection": "close"},
        )
        assert answer.status_code == 201, answer.text


def _workers(pid: int) -> list[int]:
    """uvicorn's worker processes (spawned: multiprocessing's spawn_main), not the writer or resource tracker."""
    return [child for child in _children(pid) if b"spawn_main" in _cmdline(child)]


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
