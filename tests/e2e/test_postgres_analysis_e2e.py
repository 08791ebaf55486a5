"""Export, the simulator and the notebook report against PostgreSQL, through the real commands."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import nbformat
import psycopg
import pytest

from tests.e2e.test_export_e2e import AWKWARD_METADATA
from tests.support.postgres import fresh_schema
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def run_app(*args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def simulated() -> Iterator[str]:
    """A fresh schema holding a simulated history, written by `python -m app simulate`."""
    with fresh_schema("sim") as url:
        done = run_app(*("simulate", "--events", "20000", "--users", "500", "--days", "21", "--seed", "2"),
                       *("--database-url", url, "--quiet"))  # fmt: skip
        assert done.returncode == 0, done.stderr
        yield url


def stored_metadata(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return {str(i): text for i, text in conn.execute("SELECT event_id, metadata_text FROM events")}


def test_simulate_writes_every_event_once(simulated: str) -> None:
    with psycopg.connect(simulated) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone()
    assert row == (20_000, 20_000)


def test_ndjson_export_holds_every_event_once_with_metadata_bytes_unchanged(simulated: str) -> None:
    server = ServerProcess(simulated).wait_ready()
    try:
        ids = []
        for index, metadata in enumerate(AWKWARD_METADATA):
            event = {"event_id": str(uuid.uuid4()), "user_id": f"awkward-{index}", "action": "probe",
                     "source": "test", "metadata": metadata}  # fmt: skip
            assert server.client.post("/v1/events", json=event).status_code == 201
            ids.append(event["event_id"])
        with server.client.stream("GET", "/v1/events/export", params={"format": "ndjson"}) as response:
            assert response.status_code == 200
            lines = [line for line in response.iter_lines() if line]
    finally:
        server.terminate()
    expected = stored_metadata(simulated)
    exported = [json.loads(line)["event_id"] for line in lines]
    assert sorted(exported) == sorted(expected)  # each stored event exactly once
    for line in lines:
        raw_metadata = line[line.index('"metadata":') + len('"metadata":') : -1]
        assert raw_metadata == expected[json.loads(line)["event_id"]]  # byte for byte as written
    awkward = [json.loads(line)["metadata"] for line in lines if '"awkward-' in line]
    assert awkward == AWKWARD_METADATA
    keys = [(e["timestamp"], e["event_id"]) for e in map(json.loads, lines)]
    assert keys == sorted(keys)


def test_cli_export_streams_the_filtered_events(simulated: str, tmp_path: Path) -> None:
    out = tmp_path / "purchases.ndjson"
    done = run_app("export", "--database-url", simulated, "--action", "purchase", "--out", str(out))
    assert done.returncode == 0, done.stderr
    with psycopg.connect(simulated) as conn:
        row = conn.execute("SELECT count(*) FROM events WHERE action = 'purchase'").fetchone()
    exported = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert row is not None
    assert len(exported) == row[0] > 0
    assert {e["action"] for e in exported} == {"purchase"}


def test_report_runs_the_notebook_on_postgresql(simulated: str, tmp_path: Path) -> None:
    out, executed = tmp_path / "report.html", tmp_path / "executed.ipynb"
    cache = ("--cache-dir", str(tmp_path / "analysis-cache"))  # not the user's own cache directory
    done = run_app(
        "report", "--database-url", simulated, "--out", str(out), "--executed", str(executed), *cache, timeout=240
    )
    assert done.returncode == 0, done.stderr
    nb = nbformat.read(executed, as_version=4)
    errors = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs if o.output_type == "error"]
    assert errors == []
    html = out.read_text(encoding="utf-8")
    # The planted evening peak (20:00 UTC by default) is found, named alone only if it stands out of the noise.
    found = re.search(r"(?:peaks at|busiest hours are) <strong>([^<]*) UTC</strong>", html)
    assert found
    hours = set()  # runs of hours are written 18:00–23:00
    for first, last in re.findall(r"(\d\d):00(?:–(\d\d):00)?", found[1]):
        hours.update(range(int(first), int(last or first) + 1))
    assert {19, 20, 21} & set(hours)
