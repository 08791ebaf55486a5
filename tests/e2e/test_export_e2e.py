"""GET /v1/events/export and `python -m app export` against a real store holding more events than a page."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from app.simulation import SimulationParams
from tests.integration.analysis_support import simulate_into
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]

# Metadata that tempts a serialiser to change bytes: unicode, escapes, big and tiny numbers, nesting.
AWKWARD_METADATA = [
    {"emoji": "🙂", "accents": "déjà vu", "cjk": "漢字", "quote": 'say "hi"\n\ttab', "slash": "a/b\\c"},
    {"big": 18446744073709551615, "neg": -9223372036854775808, "float": 0.1, "tiny": 1e-7, "exp": 6.02e23},
    {"nested": {"list": [1, [2, {"x": None}], True, False], "empty": {}, "empty_list": []}},
    {},
]


@pytest.fixture
def stored(tmp_path: Path, start_server: Callable[..., ServerProcess]) -> tuple[ServerProcess, Path]:
    db = tmp_path / "export.db"
    simulate_into(db, SimulationParams(events=2_600, users=60, days=7, seed=9))
    server = start_server(f"sqlite:///{db}")
    for index, metadata in enumerate(AWKWARD_METADATA):
        event = {"event_id": str(uuid.uuid4()), "user_id": f"awkward-{index}", "action": "probe", "source": "test",
                 "metadata": metadata}  # fmt: skip
        assert server.client.post("/v1/events", json=event).status_code == 201
    return server, db


def _stored_metadata(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT event_id, metadata FROM events").fetchall())


def test_ndjson_export_holds_every_event_once_with_metadata_bytes_unchanged(stored: tuple[ServerProcess, Path]) -> None:
    server, db = stored
    with server.client.stream("GET", "/v1/events/export", params={"format": "ndjson"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [line for line in response.iter_lines() if line]
    expected = _stored_metadata(db)
    ids = [json.loads(line)["event_id"] for line in lines]
    assert len(ids) == len(expected) == 2_604  # more than one page of the list endpoint: no row cap
    assert sorted(ids) == sorted(expected)  # each stored event exactly once
    for line in lines:
        event_id = json.loads(line)["event_id"]
        raw_metadata = line[line.index('"metadata":') + len('"metadata":') : -1]  # the last field of a line
        assert raw_metadata == expected[event_id]  # byte for byte as stored
    awkward = [json.loads(line)["metadata"] for line in lines if '"awkward-' in line]
    assert awkward == AWKWARD_METADATA  # and the values round-trip as JSON


def test_ndjson_export_is_in_timestamp_order(stored: tuple[ServerProcess, Path]) -> None:
    server, _ = stored
    lines = server.client.get("/v1/events/export").text.splitlines()
    keys = [(e["timestamp"], e["event_id"]) for e in map(json.loads, lines)]
    assert keys == sorted(keys)


def test_csv_export_parses_and_matches_the_store(stored: tuple[ServerProcess, Path]) -> None:
    server, db = stored
    response = server.client.get("/v1/events/export", params={"format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="events.csv"' in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text, newline="")))
    expected = _stored_metadata(db)
    assert len(rows) == len(expected)
    assert {r["event_id"] for r in rows} == set(expected)
    assert all(r["metadata"] == expected[r["event_id"]] for r in rows)
    assert list(rows[0]) == [
        "event_id",
        "user_id",
        "action",
        "source",
        "timestamp",
        "received_at",
        "sent_at",
        "metadata",
    ]


def test_export_applies_the_list_filters(stored: tuple[ServerProcess, Path]) -> None:
    server, db = stored
    with sqlite3.connect(db) as conn:
        (purchases,) = conn.execute(
            "SELECT COUNT(*) FROM events WHERE action = 'purchase' AND source = 'web'"
        ).fetchone()
    lines = server.client.get("/v1/events/export", params={"action": "purchase", "source": "web"}).text.splitlines()
    assert purchases > 0
    assert len(lines) == purchases
    assert {(e["action"], e["source"]) for e in map(json.loads, lines)} == {("purchase", "web")}


@pytest.mark.parametrize(
    "params",
    [{"format": "xml"}, {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, {"since": "yesterday"}],
)
def test_bad_export_parameters_get_a_422_problem(stored: tuple[ServerProcess, Path], params: dict[str, str]) -> None:
    server, _ = stored
    response = server.client.get("/v1/events/export", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_cli_export_writes_the_same_events_to_a_file_and_to_stdout(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    url = simulate_into(db, SimulationParams(events=1_500, users=40, days=7, seed=4))
    out = tmp_path / "events.ndjson"
    to_file = subprocess.run([sys.executable, "-m", "app", "export", "--database-url", url, "--out", str(out)],
                             cwd=ROOT, capture_output=True, timeout=60, check=False)  # fmt: skip
    assert to_file.returncode == 0, to_file.stderr
    to_stdout = subprocess.run([sys.executable, "-m", "app", "export", "--database-url", url, "--format", "csv"],
                               cwd=ROOT, capture_output=True, timeout=60, check=False)  # fmt: skip
    assert to_stdout.returncode == 0, to_stdout.stderr
    ndjson_ids = [json.loads(line)["event_id"] for line in out.read_text(encoding="utf-8").splitlines()]
    csv_ids = [r["event_id"] for r in csv.DictReader(io.StringIO(to_stdout.stdout.decode(), newline=""))]
    assert len(ndjson_ids) == 1_500
    assert ndjson_ids == csv_ids  # same events, same order
    assert set(ndjson_ids) == set(_stored_metadata(db))


def test_cli_export_of_a_missing_database_fails_without_creating_it(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    done = subprocess.run([sys.executable, "-m", "app", "export", "--database-url", f"sqlite:///{missing}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2
    assert "no database" in done.stderr
    assert not missing.exists()


def test_export_needs_a_read_key_when_keys_are_configured(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    from app.api.access import hash_key

    read_key, ingest_key = "read-key-0123456789", "ingest-key-0123456789"
    keys = f"bi:{hash_key(read_key)}:read,web:{hash_key(ingest_key)}:ingest"
    server = start_server(f"sqlite:///{tmp_path / 'keyed.db'}", env={"TELEMETRY_API_KEYS": keys})
    assert server.client.get("/v1/events/export").status_code == 401
    ingest_only = server.client.get("/v1/events/export", headers={"Authorization": f"Bearer {ingest_key}"})
    assert ingest_only.status_code == 403
    allowed = server.client.get("/v1/events/export", headers={"Authorization": f"Bearer {read_key}"})
    assert allowed.status_code == 200
