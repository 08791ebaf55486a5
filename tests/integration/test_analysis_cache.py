"""The engine's copy of the events kept between runs (analysis/cache.py), on a real SQLite file and the real
PostgreSQL server: a warm run answers exactly as a fresh load does, reads only the events that are new, and
throws the copy away when events left the store (erasure, retention, a reused seq)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import analysis
from analysis import Breakdown, Filter, funnel, quality, sessions, trends, usage
from analysis.cache import KEEP_STORES, CacheUse, cache_file
from app.cli import main as cli_main
from app.models import UserActionEvent
from tests.support.postgres import fresh_schema

STEPS = ("signup", "activate", "purchase")
# The answers compared: engine-only questions, the two that read metadata back from the store (a property's
# values, kept in the cache too) and the one asked of the store itself (duplicate ids, remembered).
QUESTIONS: dict[str, Callable[[analysis.Database], Any]] = {
    "overview": quality.overview,
    "duplicate_event_ids": quality.duplicate_event_ids,
    "action_counts": usage.action_counts,
    "trends by plan": lambda db: trends.trends(db, "week", breakdown=Breakdown.by_property("plan", 3)),
    "devices on page views": lambda db: trends.trends(
        db, "day", where=Filter(action="page_view"), breakdown=Breakdown.by_property("device", 2)
    ),
    "property_sum amount": lambda db: trends.property_sum(db, "amount", "week"),
    "funnel": lambda db: funnel.funnel(db, STEPS),
    "session_summary": sessions.session_summary,
}


def simulate(url: str, events: int, seed: int, users: int = 60) -> None:
    args = ["simulate", "--events", str(events), "--users", str(users), "--days", "14", "--seed", str(seed)]
    assert cli_main([*args, "--database-url", url, "--quiet"]) == 0


def answers(url: str, cache: Path | None) -> tuple[dict[str, Any], CacheUse]:
    with analysis.connect(url, cache=cache) if cache else analysis.connect(url) as db:
        found = {name: question(db) for name, question in QUESTIONS.items()}
        assert db.cache_use is not None  # set by the engine's load, which the first question made
        return found, db.cache_use


def assert_same(got: dict[str, Any], expected: dict[str, Any]) -> None:
    for name, value in expected.items():
        if isinstance(value, pd.DataFrame | pd.Series):
            pd.testing.assert_frame_equal(pd.DataFrame(got[name]), pd.DataFrame(value), obj=name)
        else:
            assert got[name] == value, name


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store of 3,000 simulated events, on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'events.db'}"
        simulate(url, 3000, seed=5)
        yield url
    else:
        with fresh_schema("cache") as url:
            simulate(url, 3000, seed=5)
            yield url


def test_a_warm_run_reads_nothing_and_answers_as_a_fresh_load(store: str, tmp_path: Path) -> None:
    fresh, use = answers(store, None)
    assert use.state == "off"
    cold, use = answers(store, tmp_path / "cache")
    assert (use.state, use.events_read) == ("cold", 3000)
    warm, use = answers(store, tmp_path / "cache")
    assert (use.state, use.events_read) == ("warm", 0)
    assert "warm cache" in use.describe()
    assert_same(cold, fresh)
    assert_same(warm, fresh)


def test_new_events_are_read_and_only_they(store: str, tmp_path: Path) -> None:
    answers(store, tmp_path / "cache")
    simulate(store, 400, seed=6)  # appended: seq goes on past the copy's last row
    warm, use = answers(store, tmp_path / "cache")
    assert (use.state, use.events_read) == ("warm", 400)
    assert warm["overview"]["events"] == 3400
    assert_same(warm, answers(store, None)[0])


def _first_user(url: str) -> str:
    with analysis.connect(url) as db:
        return str(db.row("SELECT min(user_id) AS u FROM events")["u"])


def test_an_erasure_throws_the_copy_away(store: str, tmp_path: Path) -> None:
    before, _ = answers(store, tmp_path / "cache")
    user = _first_user(store)
    assert cli_main(["erase", "--user-id", user, "--database-url", store]) == 0
    after, use = answers(store, tmp_path / "cache")
    assert use.state == "rebuilt", use
    assert "removed" in use.reason
    assert after["overview"]["users"] == before["overview"]["users"] - 1
    assert_same(after, answers(store, None)[0])


def test_retention_throws_the_copy_away(store: str, tmp_path: Path) -> None:
    before, _ = answers(store, tmp_path / "cache")
    middle = (
        before["overview"]["first_timestamp"]
        + (before["overview"]["last_timestamp"] - before["overview"]["first_timestamp"]) / 2
    )
    days = (datetime.now(UTC) - middle).days  # events older than this many days are removed: about half
    assert cli_main(["retention", "--days", str(days), "--database-url", store]) == 0
    after, use = answers(store, tmp_path / "cache")
    assert use.state == "rebuilt", use
    assert 0 < after["overview"]["events"] < 3000
    assert_same(after, answers(store, None)[0])


def _add_one(url: str, user_id: str) -> None:
    from app.repository import open_repository

    repository = open_repository(url)
    try:
        now = datetime.now(UTC)
        repository.add([UserActionEvent(uuid.uuid4(), user_id, "page_view", now, "web", {}, now)])
    finally:
        repository.close()


def test_a_seq_reused_after_the_last_row_was_erased_is_noticed(tmp_path: Path) -> None:
    """SQLite hands out max(seq) + 1: erase the user of the copy's last row only, add one event of another
    user, and the store has the same count and seq sum under another event. Its event_id tells them apart."""
    url = f"sqlite:///{tmp_path / 'events.db'}"
    simulate(url, 3000, seed=5)
    _add_one(url, "only-the-last-row")
    answers(url, tmp_path / "cache")
    assert cli_main(["erase", "--user-id", "only-the-last-row", "--database-url", url]) == 0
    _add_one(url, "reused-its-seq")
    with analysis.connect(url) as db:
        assert db.store_rows("SELECT seq FROM events WHERE user_id = 'reused-its-seq'") == [(3001,)]
    with analysis.connect(url, cache=tmp_path / "cache") as db:
        users = set(usage.events_per_user(db).index)
        assert db.cache_use is not None
        assert db.cache_use.state == "rebuilt", db.cache_use
    assert "reused-its-seq" in users
    assert "only-the-last-row" not in users


def test_a_cache_file_another_run_holds_is_not_waited_for(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    simulate(url, 3000, seed=5)
    answers(url, tmp_path / "cache")
    with analysis.connect(url) as db:
        held = cache_file(tmp_path / "cache", db)
    hold = f"import duckdb, sys; c = duckdb.connect({str(held)!r}); print('ready', flush=True); sys.stdin.read()"
    holder = subprocess.Popen([sys.executable, "-c", hold], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        got, use = answers(url, tmp_path / "cache")
    finally:
        holder.communicate("", timeout=30)
    assert use.state == "unavailable", use
    assert use.events_read == 3000
    assert_same(got, answers(url, None)[0])


def test_a_cache_file_that_is_not_a_database_is_started_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    simulate(url, 3000, seed=5)
    with analysis.connect(url) as db:
        broken = cache_file(tmp_path / "cache", db)
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a DuckDB file, e.g. one cut short by a crash" * 100)
    got, use = answers(url, tmp_path / "cache")
    assert (use.state, use.events_read) == ("cold", 3000), use
    assert_same(got, answers(url, None)[0])
    assert answers(url, tmp_path / "cache")[1].state == "warm"


def test_the_cache_keeps_a_bounded_number_of_stores(tmp_path: Path) -> None:
    for i in range(KEEP_STORES + 2):
        url = f"sqlite:///{tmp_path / f'events-{i}.db'}"
        simulate(url, 20, seed=i + 1, users=2)
        with analysis.connect(url, cache=tmp_path / "cache") as db:
            quality.overview(db)
            newest = cache_file(tmp_path / "cache", db)
    kept = sorted((tmp_path / "cache").glob("events-*.duckdb"))
    assert len(kept) == KEEP_STORES
    assert newest in kept
