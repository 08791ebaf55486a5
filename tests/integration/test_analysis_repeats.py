"""The events sharing user, action, source and timestamp kept with the copy (analysis/repeats.py), on a real
SQLite file and the real PostgreSQL server: the probable-retries check reads them and answers as grouping
the events does, for every filter; the cache keeps them right when a retry arrives later than its original
or a dead run left rows past the mark."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

import analysis
from analysis import Filter, quality, repeats
from analysis.cache import cache_file
from app.cli import main as cli_main
from app.models import UserActionEvent
from app.repository import open_repository
from tests.support.postgres import fresh_schema

START = datetime(2026, 1, 5, tzinfo=UTC)
FILTERS: dict[str, Filter | None] = {
    "everything": None,
    "one source": Filter(source="ios"),
    "page views": Filter(action="page_view"),
    "from a time of day": Filter(start=START + timedelta(days=3, hours=7, minutes=3)),
    "a property (reads the events)": Filter(properties={"plan": "pro"}),
}


def simulate(url: str, events: int, seed: int) -> None:
    args = ["simulate", "--events", str(events), "--users", "80", "--days", "14", "--seed", str(seed)]
    assert cli_main([*args, "--start", START.strftime("%Y-%m-%d"), "--database-url", url, "--quiet"]) == 0


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('repeats') / 'events.db'}"
        simulate(url, 3000, seed=41)
        yield url
    else:
        with fresh_schema("repeats") as url:
            simulate(url, 3000, seed=41)
            yield url


@pytest.mark.parametrize("where", FILTERS.values(), ids=FILTERS.keys())
def test_kept_repeats_answer_as_the_events_do(store: str, where: Filter | None) -> None:
    with analysis.connect(store) as kept, analysis.connect(store, rollups=False) as events_only:
        found = quality.probable_retries(kept, where=where)
        assert found == quality.probable_retries(events_only, where=where)
    if where is None:
        assert found["groups"] > 0  # the simulator retries some sends under fresh ids


def test_the_retries_check_reads_the_kept_repeats(store: str) -> None:
    with analysis.connect(store) as db:
        before = quality.probable_retries(db)
        db.engine().execute(f"DELETE FROM {repeats.TABLE} WHERE hash(user_id, ts) % 2 = 0")
        assert quality.probable_retries(db)["groups"] < before["groups"]


def kept_rows(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cache file's repeated rows as kept, and as computed from its events now."""
    with duckdb.connect(str(path)) as engine:
        engine.execute(f"CREATE TEMPORARY TABLE expected AS SELECT * FROM {repeats.TABLE} LIMIT 0")
        repeats.fill(engine, "expected", "events")
        kept = engine.execute(f"SELECT * FROM {repeats.TABLE} ORDER BY seq").df()
        return kept, engine.execute("SELECT * FROM expected ORDER BY seq").df()


def test_a_retry_that_arrives_later_than_its_original_is_found(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    simulate(url, 3000, seed=41)
    cache = tmp_path / "cache"
    with analysis.connect(url, cache=cache) as db:
        before = quality.probable_retries(db)
        path = cache_file(cache, db)
        original = db.row("SELECT user_id, action, source, ts FROM events WHERE seq = 100")
    with analysis.connect(url) as db:
        (text,) = db.store_rows("SELECT metadata FROM events WHERE seq = 100")[0]
    metadata = json.loads(text)
    moment = original["ts"].replace(tzinfo=UTC)
    retry = UserActionEvent(uuid.uuid4(), original["user_id"], original["action"], moment, original["source"], metadata)
    repository = open_repository(url)
    try:
        repository.add([retry])
    finally:
        repository.close()
    with analysis.connect(url, cache=cache) as db, analysis.connect(url, rollups=False) as events_only:
        after = quality.probable_retries(db)
        assert after == quality.probable_retries(events_only)
        assert after["extra_copies"] == before["extra_copies"] + 1
    kept, fresh = kept_rows(path)
    pd.testing.assert_frame_equal(kept, fresh)


def test_repeats_a_dead_run_left_past_the_mark_are_forgotten(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    simulate(url, 3000, seed=41)
    cache = tmp_path / "cache"
    with analysis.connect(url, cache=cache) as db:
        before = quality.probable_retries(db)
        path = cache_file(cache, db)
    with duckdb.connect(str(path)) as engine:
        mark = engine.execute("SELECT through FROM state").fetchone()
        assert mark is not None
        engine.execute("INSERT INTO events SELECT seq + 1000000, * EXCLUDE (seq) FROM events")  # every row twice
        repeats.touched(engine, "events", int(mark[0]))
        repeats.refresh_touched(engine, repeats.TABLE, "events")
        assert engine.execute(f"SELECT COUNT(*) FROM {repeats.TABLE}").fetchone() == (6000,)
    with analysis.connect(url, cache=cache) as db:
        assert quality.probable_retries(db) == before
    kept, fresh = kept_rows(path)
    pd.testing.assert_frame_equal(kept, fresh)
