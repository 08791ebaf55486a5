"""The SQLite write-ahead log stays under its bound while batches keep arriving and readers hold snapshots.

Without a checkpoint that completes between group commits, the WAL of a server under sustained load grows
by megabytes a second and shrinks only at shutdown. Bounded load: a few clients for ~35 s on loopback.
The 90 s measurement (WAL peak with and without, throughput ratio) is bench/wal_bench.py's.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import ServerProcess

BOUND = 24 * 1024 * 1024
# The writer checks the WAL between group commits, so one commit (up to 2,000 events, a few MiB of pages)
# can land past the bound before the checkpoint that follows it.
ONE_COMMIT_SLACK = 8 * 1024 * 1024
LOAD_S = 35
CLIENTS = 6
READERS = 2
BATCH = 50


def _samples(exposition: str) -> dict[str, float]:
    """Unlabelled samples by name (the WAL metrics carry no labels)."""
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if not sample.labels
    }


def _batch(client: int, n: int) -> dict[str, object]:
    return {
        "events": [
            {
                "user_id": f"user-{client}-{(n + i) % 97}",
                "action": ("view", "click", "purchase")[i % 3],
                "source": ("web", "ios")[i % 2],
                "metadata": {"path": f"/page/{i % 40}", "n": n + i, "pad": "x" * 1000},
            }
            for i in range(BATCH)
        ]
    }


def test_wal_stays_under_its_bound_under_sustained_batch_load(tmp_path: Path) -> None:
    db = tmp_path / "telemetry.db"
    wal = tmp_path / "telemetry.db-wal"
    env = {
        "TELEMETRY_SQLITE_WAL_MAX_BYTES": str(BOUND),
        "TELEMETRY_SQLITE_WAL_CHECKPOINT_BYTES": str(BOUND // 4),
        "TELEMETRY_LOG_LEVEL": "WARNING",
    }
    server = ServerProcess(f"sqlite:///{db}", env=env).wait_ready()
    stop = threading.Event()
    accepted = [0] * CLIENTS
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    samples: list[int] = []

    def ingest(client: int) -> None:
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            n = 0
            while not stop.is_set():
                response = http.post("/v1/events/batch", json=_batch(client, n))
                n += BATCH
                with lock:
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code == 200:
                    accepted[client] += response.json()["accepted"]

    def read() -> None:
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            while not stop.is_set():
                http.get("/v1/stats", params={"bucket": "day"})

    def sample() -> None:
        while not stop.wait(0.05):
            samples.append(wal.stat().st_size if wal.exists() else 0)

    threads = [threading.Thread(target=ingest, args=(c,)) for c in range(CLIENTS)]
    threads += [threading.Thread(target=read) for _ in range(READERS)]
    threads.append(threading.Thread(target=sample))
    try:
        for thread in threads:
            thread.start()
        time.sleep(LOAD_S)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    try:
        metrics = _samples(server.client.get("/metrics").text)
    finally:
        assert server.terminate() == 0

    total = sum(accepted)
    assert set(statuses) == {200}, statuses
    # Every page of the database went through the WAL: without checkpoints the WAL would be at least this big.
    assert db.stat().st_size > BOUND, f"only {total} events: the load did not exercise the WAL"
    peak = max(samples, default=0)
    assert len(samples) > 100
    assert peak < BOUND + ONE_COMMIT_SLACK, (
        f"WAL peaked at {peak / 2**20:.1f} MiB: {[round(s / 2**20, 1) for s in samples[::5]]}"
    )
    assert metrics["telemetry_sqlite_wal_limit_bytes"] == BOUND
    assert 0 < metrics["telemetry_sqlite_wal_bytes"] < BOUND + ONE_COMMIT_SLACK
    assert metrics["telemetry_sqlite_checkpoint_duration_seconds_count"] > 0
