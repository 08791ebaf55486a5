"""`python -m app export --format parquet`: typed columns that pandas and DuckDB read, row groups, a round trip."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.export_parquet import SCHEMA, write_parquet
from app.repository.memory import InMemoryEventRepository
from app.repository.port import EventFilter
from tests.integration.repository_contract import make_event
from tests.support.postgres import fresh_schema

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)


def app_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, capture_output=True, text=True,
                          input=stdin, timeout=180, check=False)  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
def stored(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store of either backend holding a few awkward events, imported through the CLI."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'parquet.db'}"
        yield _fill(url)
    else:
        with fresh_schema("pq") as url:
            yield _fill(url)


def _fill(url: str) -> str:
    lines = []
    for i in range(5):
        event = {
            "event_id": str(uuid.uuid4()), "user_id": f"user-{i % 2}", "action": ["view", "click"][i % 2],
            "source": "web", "timestamp": (T0 + timedelta(minutes=i, microseconds=i)).isoformat(),
            "metadata": {"i": i, "text": "ação 漢 🎉", "nested": {"ok": i % 2 == 0}, "big": 2**63 + i},
        }  # fmt: skip
        if i == 3:
            event["sent_at"] = (T0 + timedelta(minutes=i, seconds=1)).isoformat()
        lines.append(json.dumps(event))
    done = app_cli("import", "-", "--database-url", url, "--quiet", stdin="\n".join(lines) + "\n")
    assert done.returncode == 0, done.stderr
    return url


def _export(url: str, tmp_path: Path, fmt: str) -> Path:
    out = tmp_path / f"events-{uuid.uuid4().hex[:6]}.{fmt}"
    done = app_cli("export", "--format", fmt, "--database-url", url, "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


def test_parquet_has_typed_columns_that_pandas_reads(stored: str, tmp_path: Path) -> None:
    import pandas as pd

    path = _export(stored, tmp_path, "parquet")
    assert pq.read_schema(path).equals(SCHEMA)
    frame = pd.read_parquet(path)
    assert str(frame["timestamp"].dtype) == "datetime64[us, UTC]"
    assert str(frame["sent_at"].dtype) == "datetime64[us, UTC]"
    assert frame["sent_at"].isna().sum() == 4
    expected = [json.loads(line) for line in _export(stored, tmp_path, "ndjson").read_text().splitlines()]
    assert frame["event_id"].tolist() == [e["event_id"] for e in expected]
    assert [t.isoformat() for t in frame["timestamp"]] == [
        datetime.fromisoformat(e["timestamp"]).isoformat() for e in expected
    ]
    assert [json.loads(m) for m in frame["metadata"]] == [e["metadata"] for e in expected]


def test_parquet_is_queryable_with_duckdb(stored: str, tmp_path: Path) -> None:
    import duckdb

    path = _export(stored, tmp_path, "parquet")
    with duckdb.connect() as db:
        rows = db.execute(
            # epoch_us: the moment as a number (a TIMESTAMPTZ would need pytz on the Python side)
            "SELECT action, count(*), epoch_us(min(timestamp)), max(CAST(json_extract(metadata, '$.i') AS INTEGER))"
            " FROM read_parquet(?) GROUP BY action ORDER BY action",
            [str(path)],
        ).fetchall()

    def us(moment: datetime) -> int:
        return round(moment.timestamp() * 1_000_000)

    assert rows == [("click", 2, us(T0 + timedelta(minutes=1, microseconds=1)), 3), ("view", 3, us(T0), 4)]


def test_parquet_export_imports_back_to_the_same_ndjson(stored: str, tmp_path: Path) -> None:
    parquet = _export(stored, tmp_path, "parquet")
    target = f"sqlite:///{tmp_path / 'back.db'}"
    done = app_cli("import", str(parquet), "--database-url", target, "--quiet")
    assert done.returncode == 0, done.stderr
    assert "accepted 5" in done.stderr
    assert _export(target, tmp_path, "ndjson").read_bytes() == _export(stored, tmp_path, "ndjson").read_bytes()


def test_each_chunk_of_rows_is_one_row_group(tmp_path: Path) -> None:
    repository = InMemoryEventRepository()
    repository.add([make_event(timestamp=T0 + timedelta(seconds=i)) for i in range(7)])
    path = tmp_path / "groups.parquet"
    with path.open("wb") as out:
        assert write_parquet(repository.iter_rows(EventFilter(), 3), out) == 7
    parquet = pq.ParquetFile(path)
    assert [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)] == [3, 3, 1]
    assert parquet.read().column("timestamp").type == pa.timestamp("us", tz="UTC")


def test_an_empty_store_exports_a_valid_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    with path.open("wb") as out:
        assert write_parquet(InMemoryEventRepository().iter_rows(EventFilter(), 10), out) == 0
    table = pq.read_table(path)
    assert table.num_rows == 0
    assert table.schema.equals(SCHEMA)
