"""Erasure, suppression, retention and the Parquet route through a real service, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.api.access import hash_key
from tests.support.postgres import fresh_schema
from tests.support.problems import assert_problem
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
INGEST_KEY, READ_KEY, ADMIN_KEY = "ingest-key-lifecycle-01", "read-key-lifecycle-01", "admin-key-lifecycle-01"
KEYS = ",".join(
    [f"web:{hash_key(INGEST_KEY)}:ingest", f"bi:{hash_key(READ_KEY)}:read", f"ops:{hash_key(ADMIN_KEY)}:admin"]
)


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lifecycle.db'}"
    else:
        with fresh_schema("life") as url:
            yield url


@pytest.fixture
def keyed(start_server: Callable[..., ServerProcess], database_url: str) -> ServerProcess:
    return start_server(database_url, env={"TELEMETRY_API_KEYS": KEYS, "TELEMETRY_SUPPRESSION_REFRESH_S": "0.2"})


def post(server: ServerProcess, user_id: str, **fields: Any) -> Any:
    body = {"user_id": user_id, "action": "click", "source": "web", **fields}
    return server.client.post("/v1/events", json=body, headers=auth(INGEST_KEY))


def users(server: ServerProcess) -> list[str]:
    response = server.client.get("/v1/events/export", headers=auth(READ_KEY))
    return [json.loads(line)["user_id"] for line in response.text.splitlines() if line]


def metric(server: ServerProcess, name: str) -> float:
    for line in server.client.get("/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exposed")


def test_erasure_removes_the_users_events_once_records_it_and_needs_admin(keyed: ServerProcess) -> None:
    for user in ("alice", "alice", "bob"):
        assert post(keyed, user).status_code == 201
    body = {"user_id": "alice"}
    for key in (INGEST_KEY, READ_KEY):
        assert_problem(keyed.client.post("/v1/erasures", json=body, headers=auth(key)), 403)
    assert_problem(keyed.client.post("/v1/erasures", json=body), 401)
    assert_problem(keyed.client.post("/v1/erasures", json={"user_id": ""}, headers=auth(ADMIN_KEY)), 422)
    assert_problem(keyed.client.get("/v1/erasures", headers=auth(READ_KEY)), 403)

    first = keyed.client.post("/v1/erasures", json=body, headers=auth(ADMIN_KEY))
    assert first.status_code == 200, first.text
    digest = hashlib.sha256(b"alice").hexdigest()
    assert first.json() | {"erased_at": None} == {
        "erased_at": None, "user_id_sha256": digest, "events_removed": 2, "key_name": "ops", "suppressed": False,
    }  # fmt: skip
    assert users(keyed) == ["bob"]
    again = keyed.client.post("/v1/erasures", json=body, headers=auth(ADMIN_KEY))
    assert again.json()["events_removed"] == 0  # idempotent

    listed = keyed.client.get("/v1/erasures", headers=auth(ADMIN_KEY))
    assert listed.status_code == 200
    records = listed.json()["erasures"]
    assert [(r["user_id_sha256"], r["events_removed"], r["key_name"]) for r in records] == [
        (digest, 2, "ops"),
        (digest, 0, "ops"),
    ]
    assert "alice" not in listed.text
    assert metric(keyed, "telemetry_erasures_total") == 2
    assert metric(keyed, "telemetry_erased_events_total") == 2
    assert post(keyed, "alice").status_code == 201  # not suppressed: the user may come back


HOSTILE_ERASURES = [
    (b'{"user_id": "x", "suppress": 0}', 422),  # a number is not a boolean
    (b'{"user_id": 42}', 422),
    (b'{"user_id": "x", "extra": true}', 422),
    (b'{"user_id": "' + b"x" * 300 + b'"}', 422),
    (b'{"user_id": "a\\u0000b"}', 422),
    (b'{"user_id": "x", "user_id": "y"}', 400),  # duplicate key: not strict JSON
    (b"[]", 422),
    (b"not json", 400),
]


def test_hostile_erasure_requests_get_a_4xx_problem(keyed: ServerProcess) -> None:
    assert post(keyed, "x").status_code == 201
    for body, status in HOSTILE_ERASURES:
        response = keyed.client.post(
            "/v1/erasures", content=body, headers={**auth(ADMIN_KEY), "content-type": "application/json"}
        )
        assert_problem(response, status)
    assert users(keyed) == ["x"]  # nothing was erased


def test_suppressed_users_later_events_are_refused_and_counted(keyed: ServerProcess) -> None:
    assert post(keyed, "carol").status_code == 201
    erased = keyed.client.post("/v1/erasures", json={"user_id": "carol", "suppress": True}, headers=auth(ADMIN_KEY))
    assert erased.json()["suppressed"] is True
    refused = post(keyed, "carol")
    problem = assert_problem(refused, 422)
    assert problem["type"].endswith("user-erased")
    assert problem["reason"] == "user_erased"
    batch = keyed.client.post(
        "/v1/events/batch",
        json={"events": [{"user_id": u, "action": "a", "source": "s"} for u in ("carol", "dave")]},
        headers=auth(INGEST_KEY),
    )
    assert [r["status"] for r in batch.json()["results"]] == ["invalid", "accepted"]
    assert users(keyed) == ["dave"]
    assert 'telemetry_events_rejected_total{reason="user_erased"} 2.0' in keyed.client.get("/metrics").text


def test_erase_command_and_a_replica_that_learns_the_suppression(
    start_server: Callable[..., ServerProcess], database_url: str
) -> None:
    server = start_server(database_url, env={"TELEMETRY_SUPPRESSION_REFRESH_S": "0.2"})
    server.client.post("/v1/events", json={"user_id": "erin", "action": "a", "source": "s"})
    done = subprocess.run(
        [sys.executable, "-m", "app", "erase", "--user-id", "erin", "--suppress", "--database-url", database_url],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "erased 1 events" in done.stdout
    assert "erin" not in done.stdout
    deadline = time.monotonic() + 10
    while (status := server.client.post("/v1/events", json={"user_id": "erin", "action": "a", "source": "s"})
           .status_code) != 422 and time.monotonic() < deadline:  # fmt: skip
        time.sleep(0.1)  # the service re-reads the list every TELEMETRY_SUPPRESSION_REFRESH_S
    assert status == 422
    records = server.client.get("/v1/erasures").json()["erasures"]
    assert records[0]["key_name"] == "cli"


def test_retention_task_removes_old_events_and_reports_it(
    start_server: Callable[..., ServerProcess], database_url: str
) -> None:
    seed = start_server(database_url)
    old = [{"user_id": f"old-{i}", "action": "a", "source": "s", "timestamp": "2001-01-01T00:00:00Z"}
           for i in range(25)]  # fmt: skip
    assert seed.client.post("/v1/events/batch", json={"events": old}).status_code == 200
    assert seed.client.post("/v1/events", json={"user_id": "new", "action": "a", "source": "s"}).status_code == 201
    assert seed.terminate() == 0

    dry = subprocess.run(
        [sys.executable, "-m", "app", "retention", "--days", "30", "--dry-run", "--database-url", database_url],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert "would remove 25 events" in dry.stdout

    env = {"TELEMETRY_RETENTION_DAYS": "30", "TELEMETRY_RETENTION_CHUNK_ROWS": "10"}
    server = start_server(database_url, env=env)
    assert server.wait_for_log(lambda line: line.get("event") == "retention_pass", timeout_s=15)
    assert users(server) == ["new"]
    text = server.client.get("/metrics").text
    assert "telemetry_retention_removed_total 25.0" in text
    assert metric(server, "telemetry_retention_last_run_timestamp_seconds") > time.time() - 60
    assert 0 <= metric(server, "telemetry_oldest_event_age_seconds") < 60  # only the new event is left
    (line,) = server.wait_for_log(lambda line: line.get("event") == "retention_pass")
    assert (line["removed"], line["chunks"]) == (25, 3)


def test_parquet_route_streams_typed_columns(start_server: Callable[..., ServerProcess], database_url: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    server = start_server(database_url)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for i, event_id in enumerate(ids):
        body = {"event_id": event_id, "user_id": f"u{i}", "action": "a", "source": "s",
                "timestamp": f"2026-01-0{i + 1}T00:00:00.000001Z", "metadata": {"i": i}}  # fmt: skip
        assert server.client.post("/v1/events", json=body).status_code == 201
    response = server.client.get("/v1/events/export", params={"format": "parquet", "since": "2026-01-02T00:00:00Z"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(response.content))
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert table.column("event_id").to_pylist() == ids[1:]
    assert [json.loads(m) for m in table.column("metadata").to_pylist()] == [{"i": 1}, {"i": 2}]
