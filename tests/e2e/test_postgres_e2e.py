"""The service unchanged on PostgreSQL: same API, many replicas on one database, outages survived.

Every service here is the real `python -m app serve` process with TELEMETRY_DATABASE_URL=postgresql://...
on a fresh schema of the real server. Outages are made with a TCP proxy the test controls
(tests/support/tcp_proxy.py), never by stopping the shared server.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e import test_api_e2e as api
from tests.routes import test_event_routes as routes
from tests.routes import test_roundtrip_properties as roundtrip
from tests.routes.test_event_routes import EVENT
from tests.support.in_process import InProcessClient, in_process_app
from tests.support.ingest_load import IngestLoad
from tests.support.postgres import POOL_DRAWS_RANDOM, fresh_schema, url_with_schema
from tests.support.problems import assert_problem
from tests.support.server import ServerProcess
from tests.support.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.e2e, POOL_DRAWS_RANDOM]
StartServer = Callable[..., ServerProcess]


@pytest.fixture
def database_url() -> Iterator[str]:
    with fresh_schema("e2e") as url:
        yield url


@pytest.fixture
def start_server(database_url: str) -> Iterator[StartServer]:
    """Overrides tests/conftest.py's: the same factory, on PostgreSQL instead of a SQLite file."""
    started: list[ServerProcess] = []

    def start(url: str | None = None, **kwargs: Any) -> ServerProcess:
        server = ServerProcess(url or database_url, **kwargs).wait_ready()
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.kill()


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server()


@pytest.fixture
def make_client(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Overrides tests/routes' factory: the app in process, on the fresh PostgreSQL schema."""
    with ExitStack() as stack:

        def make(env: dict[str, str] | None = None, **settings: Any) -> InProcessClient:
            for name, value in (env or {}).items():
                monkeypatch.setenv(name, value)
            return stack.enter_context(in_process_app(tmp_path, database_url=database_url, **settings))

        yield make


@pytest.fixture
def client(make_client: Callable[..., InProcessClient]) -> InProcessClient:
    return make_client()


def metric_value(server: ServerProcess, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(server.client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


# -- the API suite again, on PostgreSQL: same status codes, bodies and metrics (in process, tests/routes),
# and the same logs (the real process) ------------------------------------------------------------------
# (test_readiness_fails_when_the_database_cannot_be_written holds a SQLite file lock; the PostgreSQL
# equivalent, an unreachable database, is test_database_outage_... below.)
test_post_event_stores_it_and_returns_201_with_server_fields = (
    routes.test_post_event_stores_it_and_returns_201_with_server_fields
)
test_retry_with_same_event_id_returns_200_and_stores_once = (
    routes.test_retry_with_same_event_id_returns_200_and_stores_once
)
test_same_event_id_with_other_payload_is_409_naming_the_conflict = (
    routes.test_same_event_id_with_other_payload_is_409_naming_the_conflict
)
test_naive_timestamp_is_422_listing_the_field = routes.test_naive_timestamp_is_422_listing_the_field
test_validation_error_lists_every_failing_field = routes.test_validation_error_lists_every_failing_field
test_malformed_json_is_400 = routes.test_malformed_json_is_400
test_batch_stores_valid_items_and_reports_each_in_order = routes.test_batch_stores_valid_items_and_reports_each_in_order
test_batch_over_the_maximum_is_413_and_stores_nothing = routes.test_batch_over_the_maximum_is_413_and_stores_nothing
test_malformed_batch_envelope_is_422 = routes.test_malformed_batch_envelope_is_422
test_unknown_event_is_404_problem = routes.test_unknown_event_is_404_problem
test_listing_pages_through_everything_with_cursor = routes.test_listing_pages_through_everything_with_cursor
test_stats_count_by_action_source_and_bucket = routes.test_stats_count_by_action_source_and_bucket
test_health_and_readiness = routes.test_health_and_readiness
test_logs_are_json_with_one_line_per_recorded_event_and_an_access_line = (
    api.test_logs_are_json_with_one_line_per_recorded_event_and_an_access_line
)
test_domain_metrics_count_actions_by_action_and_source = routes.test_domain_metrics_count_actions_by_action_and_source
# Property (hypothesis): any valid event sent over HTTP reads back unchanged, here from PostgreSQL.
test_any_valid_event_reads_back_unchanged_over_http = roundtrip.test_any_valid_event_reads_back_unchanged_over_http


def stored_ids(database_url: str) -> list[uuid.UUID]:
    with psycopg.connect(database_url) as conn:
        return [row[0] for row in conn.execute("SELECT event_id FROM events")]


def test_the_service_really_writes_to_postgresql(server: ServerProcess, database_url: str) -> None:
    body = server.client.post("/v1/events", json={**EVENT, "metadata": {"z": 1, "a": [1.5, "x"]}}).json()
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT event_id, metadata FROM events").fetchone()
    assert row == (uuid.UUID(body["event_id"]), {"z": 1, "a": [1.5, "x"]})
    assert list(server.client.get(f"/v1/events/{body['event_id']}").json()["metadata"]) == ["z", "a"]


def test_nul_anywhere_is_422_not_a_database_error(server: ServerProcess) -> None:
    """PostgreSQL text and jsonb cannot hold NUL; the API refuses it up front, as on SQLite."""
    body = assert_problem(server.client.post("/v1/events", json={**EVENT, "user_id": "a\x00b"}), 422)
    assert body["errors"][0]["field"] == "user_id"
    assert_problem(server.client.get("/v1/events", params={"user_id": "a\x00b"}), 422)
    assert_problem(server.client.post("/v1/events", json={**EVENT, "metadata": {"k": "a\x00b"}}), 422)
    assert server.client.get("/readyz").status_code == 200


def test_two_replicas_ingest_concurrently_into_one_database(start_server: StartServer, database_url: str) -> None:
    with ThreadPoolExecutor(2) as pool:  # both start (and migrate) at once
        replicas = list(pool.map(lambda _: start_server(), range(2)))
    sent: list[list[dict[str, Any]]] = [[] for _ in range(8)]
    shared = [
        {**EVENT, "event_id": str(uuid.uuid4()), "action": "shared", "timestamp": "2026-05-01T10:00:00Z"}
        for _ in range(50)
    ]
    statuses: list[int] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        replica = replicas[n % 2]
        with httpx.Client(base_url=replica.base_url, timeout=30) as http:
            for b in range(10):
                batch = [{**EVENT, "event_id": str(uuid.uuid4()), "action": f"a{b % 3}"} for _ in range(20)]
                response = http.post("/v1/events/batch", json={"events": batch})
                assert response.status_code == 200, response.text
                assert response.json()["accepted"] == 20
                sent[n].extend(batch)
            # Every client also sends the shared events one by one: a retry landing on another replica.
            for event in shared:
                code = http.post("/v1/events", json=event).status_code
                with lock:
                    statuses.append(code)

    with ThreadPoolExecutor(len(sent)) as pool:
        list(pool.map(client, range(len(sent))))

    expected = {uuid.UUID(e["event_id"]) for batch in sent for e in batch} | {uuid.UUID(e["event_id"]) for e in shared}
    ids = stored_ids(database_url)
    assert len(ids) == len(set(ids)) == len(expected)
    assert set(ids) == expected
    assert statuses.count(201) == len(shared)  # each shared event created once, on one replica or the other
    assert statuses.count(200) == len(shared) * (len(sent) - 1)
    recorded = sum(metric_value(r, "telemetry_user_actions_total") for r in replicas)
    duplicates = sum(metric_value(r, "telemetry_events_duplicate_total") for r in replicas)
    assert recorded == len(expected)
    assert duplicates == len(shared) * (len(sent) - 1)
    assert all(metric_value(r, "telemetry_user_actions_total") > 0 for r in replicas)


def test_a_conflict_is_detected_across_replicas(start_server: StartServer) -> None:
    first, second = start_server(), start_server()
    event = {**EVENT, "event_id": str(uuid.uuid4()), "timestamp": "2026-05-01T10:00:00Z"}
    assert first.client.post("/v1/events", json=event).status_code == 201
    assert second.client.post("/v1/events", json=event).status_code == 200
    body = assert_problem(second.client.post("/v1/events", json={**event, "source": "ios"}), 409)
    assert body["conflicting_fields"] == ["source"]


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")  # a client's failed assert
def test_database_outage_gives_503_then_recovers_losing_no_acknowledged_event(
    start_server: StartServer, database_url: str
) -> None:
    schema = database_url.rsplit("%3D", 1)[1]
    proxy = TcpProxy("127.0.0.1", 5432).start()
    service = start_server(
        url_with_schema(schema, f"postgresql://postgres@127.0.0.1:{proxy.port}/test"),
        env={"TELEMETRY_POSTGRES_ACQUIRE_TIMEOUT_S": "0.5"},
    )
    acknowledged: set[str] = set()
    unavailable: list[httpx.Response] = []
    lock = threading.Lock()
    phase = {"name": "before"}
    acked_after_restore = threading.Event()
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=service.base_url, timeout=30) as http:
            while not stop.is_set():
                # A well-behaved client: its events carry their own time, and on 503 it waits and sends the
                # same event again. (A 503 can follow a COMMIT that went through: the retry then reads 200.)
                event = {**EVENT, "event_id": str(uuid.uuid4()), "timestamp": datetime.now(UTC).isoformat()}
                while not stop.is_set():
                    response = http.post("/v1/events", json=event)
                    if response.status_code in (200, 201):
                        with lock:
                            acknowledged.add(event["event_id"])
                        if phase["name"] == "after":
                            acked_after_restore.set()
                        break
                    assert response.status_code == 503, response.text
                    with lock:
                        unavailable.append(response)
                    time.sleep(0.2)

    threads = [threading.Thread(target=client) for _ in range(6)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.5)
        proxy.cut()  # the database "restarts": open connections reset, new ones refused
        phase["name"] = "down"
        time.sleep(1.0)
        readiness: list[str] = []
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline and not any("after 0.50 sec" in d for d in readiness):
            readiness.append(assert_problem(service.client.get("/readyz"), 503)["detail"])
            time.sleep(0.3)
        # The connection wait is the setting's (0.5 s), not the default 2 s.
        assert any("after 0.50 sec" in d for d in readiness), readiness
        time.sleep(1.0)
        assert unavailable, "no request was refused while the database was unreachable"
        proxy.restore()
        phase["name"] = "after"
        assert acked_after_restore.wait(30), "no write acknowledged within 30 s of the database returning"
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert service.client.get("/readyz").status_code == 200
    finally:
        stop.set()
        proxy.stop()
    first = unavailable[0]
    assert first.headers["content-type"] == "application/problem+json"
    assert int(first.headers["retry-after"]) >= 1
    ids = {str(i) for i in stored_ids(database_url)}
    assert acknowledged <= ids  # nothing acknowledged is lost
    # A refused request may still have committed (the connection died after COMMIT was sent); its
    # retry then read 200 duplicate. Nothing else is in the table.
    assert len(ids - acknowledged) <= len(threads)
    assert len(acknowledged) > 20
    # The outage is logged as JSON lines (the pool's own warnings included), not as stray tracebacks.
    lines = service.json_lines()
    assert any(line.get("logger") == "psycopg.pool" and line["level"] == "warning" for line in lines)
    assert any(line.get("status") == 503 and line["event"] == "http_request" for line in lines)


def test_two_workers_of_one_process_share_the_database(
    start_server: StartServer, database_url: str, tmp_path: Path
) -> None:
    """`serve --workers 2` on PostgreSQL: each worker migrates (taking turns) and writes through its own pool."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    server = start_server(env={"TELEMETRY_METRICS_MULTIPROC_DIR": str(metrics_dir)}, extra_args=["--workers", "2"])
    with IngestLoad(server.base_url, clients=8) as load:
        load.wait_acknowledged(2000)
    result = load.stop()
    assert result.errors == []
    assert set(result.statuses) <= {200, 201}, result.statuses
    assert {str(i) for i in stored_ids(database_url)} == set(result.acknowledged)
    assert metric_value(server, "telemetry_user_actions_total") == len(result.acknowledged)
    assert server.terminate() == 0
