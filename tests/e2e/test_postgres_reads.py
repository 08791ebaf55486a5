"""On PostgreSQL, reads never take the connections writes need, stalled exports hold none, long reads time out.

Before, 8 concurrent exports took every pool connection: writes and /readyz answered 503 until they ended,
and clients that stopped reading left their connections "idle in transaction". The table is filled with one
INSERT ... SELECT generate_series in the test's own schema.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from tests.support.postgres import ADMIN_URL, fresh_schema
from tests.support.problems import assert_problem
from tests.support.server import ServerProcess

ROWS = 100_000
EVENT = {"user_id": "u-1", "action": "click", "source": "web"}


@pytest.fixture
def filled_url() -> Iterator[str]:
    """A URL on a fresh schema holding ROWS events, with an application_name of its own."""
    with fresh_schema("reads") as url:
        name = f"t12_{uuid.uuid4().hex[:10]}"
        url = f"{url}&application_name={name}"
        ServerProcess(url).wait_ready().terminate()  # the service creates its schema
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                """
                INSERT INTO events (event_id, user_id, action, source, "timestamp", received_at, metadata,
                                    metadata_text)
                SELECT md5(i::text)::uuid, 'user-' || (i %% 5000), (ARRAY['view', 'click', 'buy'])[1 + i %% 3],
                       (ARRAY['web', 'ios'])[1 + i %% 2], timestamptz '2026-01-01' + i * interval '30 s',
                       timestamptz '2026-06-01', '{"n": 1}', '{"n": 1}'
                FROM generate_series(1, %s) AS i
                """,
                (ROWS,),
            )
        yield url


def _connections(application_name: str, state: str) -> int:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND state = %s",
            (application_name, state),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_stalled_exports_hold_no_connection_and_writes_go_on(filled_url: str) -> None:
    name = filled_url.rsplit("application_name=", 1)[1]
    env = {"TELEMETRY_POSTGRES_POOL_MAX_SIZE": "4", "TELEMETRY_READ_CONCURRENCY": "2"}
    server = ServerProcess(filled_url, env=env).wait_ready()
    stalled: list[httpx.Response] = []
    clients: list[httpx.Client] = []
    try:
        for _ in range(8):  # twice the pool: each reads its first chunk, then stops reading
            client = httpx.Client(base_url=server.base_url, timeout=30)
            clients.append(client)
            response = client.send(client.build_request("GET", "/v1/events/export"), stream=True)
            assert response.status_code == 200
            next(response.iter_bytes())
            stalled.append(response)
        time.sleep(2.0)  # the server's side of each stalled stream has filled the socket buffers by now
        for n in range(10):
            t0 = time.perf_counter()
            answer = server.client.post("/v1/events", json={**EVENT, "user_id": f"w-{n}"})
            assert answer.status_code == 201, answer.text
            assert time.perf_counter() - t0 < 2.0
        assert server.client.get("/readyz").status_code == 200
        # No connection waits "idle in transaction" for a client that stopped reading.
        assert _connections(name, "idle in transaction") == 0
    finally:
        for response in stalled:
            response.close()
        for client in clients:
            client.close()
        server.terminate()


def test_a_read_past_the_statement_timeout_is_a_503_and_writes_are_not_affected(filled_url: str) -> None:
    env = {"TELEMETRY_READ_STATEMENT_TIMEOUT_S": "0.01"}
    server = ServerProcess(filled_url, env=env).wait_ready()
    try:
        slow = server.client.get("/v1/stats")  # three groupings over 100,000 rows: well past 10 ms
        body = assert_problem(slow, 503)
        assert "statement timeout" in body["detail"]
        assert slow.headers["retry-after"]
        # The timeout is the read's, not an outage: writes and readiness are untouched, at once.
        assert server.client.post("/v1/events", json=EVENT).status_code == 201
        assert server.client.get("/readyz").status_code == 200
        assert server.client.get("/v1/events", params={"limit": 5}).status_code == 200
    finally:
        server.terminate()


def test_reads_on_a_database_with_another_time_zone(filled_url: str) -> None:
    """The service sets its own session time zone: a database default of Europe/Berlin changes nothing."""
    db = f"tz_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
        conn.execute(f"ALTER DATABASE \"{db}\" SET timezone TO 'Europe/Berlin'")
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{db}"
    try:
        server = ServerProcess(url).wait_ready()
        try:
            moment = "2026-03-29T00:59:59.000001Z"  # an hour before Berlin's clocks go forward
            stored = server.client.post("/v1/events", json={**EVENT, "timestamp": moment})
            assert stored.status_code == 201
            event_id = stored.json()["event_id"]
            assert server.client.get(f"/v1/events/{event_id}").json()["timestamp"] == moment
            days = server.client.get("/v1/stats", params={"bucket": "day"}).json()["by_bucket"]
            assert days == [{"start": "2026-03-29T00:00:00Z", "count": 1}]
            # The time window keeps out instants a non-UTC session cannot read (year 10000 in Berlin).
            far = {**EVENT, "timestamp": "9999-12-31T23:30:00Z", "sent_at": "9999-12-31T23:00:00Z"}
            assert_problem(server.client.post("/v1/events", json=far), 422)
        finally:
            server.terminate()
        with psycopg.connect(url) as conn:
            # Our sessions said UTC; a plain session on this database still says Berlin (we changed nothing).
            assert conn.execute("SHOW TimeZone").fetchone() == ("Europe/Berlin",)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def test_export_connections_are_released_when_the_client_disconnects(filled_url: str) -> None:
    name = filled_url.rsplit("application_name=", 1)[1]
    server = ServerProcess(filled_url, env={"TELEMETRY_POSTGRES_POOL_MAX_SIZE": "4"}).wait_ready()
    try:
        done = threading.Event()

        def export_and_vanish() -> None:
            with (
                httpx.Client(base_url=server.base_url, timeout=30) as client,
                client.stream("GET", "/v1/events/export") as response,
            ):
                next(response.iter_bytes())
            done.set()

        threads = [threading.Thread(target=export_and_vanish) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert done.is_set()
        deadline = time.monotonic() + 5
        while _connections(name, "active") + _connections(name, "idle in transaction") > 0:
            assert time.monotonic() < deadline, "export connections still busy after the clients left"
            time.sleep(0.1)
        assert server.client.post("/v1/events", json=EVENT).status_code == 201
    finally:
        server.terminate()
