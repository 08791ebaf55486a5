"""`python -m app serve --workers 2`: both workers write to one SQLite file, /metrics sums over both."""

from __future__ import annotations

import shutil
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
