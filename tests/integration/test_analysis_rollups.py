"""The per user-day rollup (analysis/rollups.py), on a real SQLite file and the real PostgreSQL server: the
questions it serves read it, answer exactly as they do from the events for every filter it can serve (and
fall back to the events for the ones it cannot), and the cache keeps it equal to the aggregate of its copy
when new events arrive or a run died mid-append."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

import analysis
from analysis import Breakdown, Filter, funnel, lifecycle, quality, retention, rollups, trends, usage
from analysis.cache import CATALOG, cache_file
from app.cli import main as cli_main
from tests.support.postgres import fresh_schema

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday

Question = Callable[[analysis.Database, Filter | None], Any]
QUESTIONS: dict[str, Question] = {
    "overview": lambda db, where: quality.overview(db, where=where),
    "missing_values": lambda db, where: quality.missing_values(db, where=where),
    "action_counts": lambda db, where: usage.action_counts(db, where=where),
    "actions_by_source": lambda db, where: usage.actions_by_source(db, where=where),
    "daily_active_users": lambda db, where: usage.daily_active_users(db, where=where),
    "weekly_active_users": lambda db, where: usage.weekly_active_users(db, where=where),
    # users with equal counts come back in either order
    "events_per_user": lambda db, where: usage.events_per_user(db, where=where).sort_index(),
    "trends by day": lambda db, where: trends.trends(db, "day", where=where),
    "trends by week and source": lambda db, where: trends.trends(db, "week", where, Breakdown.by_source(2)),
    "active_users": lambda db, where: trends.active_users(db, where=where),
    "lifecycle": lambda db, where: lifecycle.lifecycle(db, where=where),
    "stickiness": lambda db, where: lifecycle.stickiness(db, where=where),
    "retention by week": lambda db, where: retention.retention_table(db, where=where),
    "retention rolling": lambda db, where: retention.retention_table(db, period="rolling", where=where),
    "retention rolling by source": lambda db, where: retention.retention_table(
        db, period="rolling", where=where, breakdown=Breakdown.by_source()
    ),
    "retention signup to purchase": lambda db, where: retention.retention_table(
        db, "signup", "purchase", "rolling", where=where
    ),
    "funnel_by_cohort": lambda db, where: funnel.funnel_by_cohort(db, where=where),
}
FILTERS: dict[str, Filter | None] = {
    "everything": None,
    "one source": Filter(source="ios"),
    "two actions": Filter(action=("page_view", "click")),
    "days": Filter(start=START + timedelta(days=2), end=START + timedelta(days=9)),
    "days and a source": Filter(start=START + timedelta(days=3), source=("web", "android")),
    "no source at all": Filter(source=()),
    # the rollup cannot serve these: the questions read the events
    "a time of day": Filter(start=START + timedelta(days=2, hours=13, minutes=5), end=START + timedelta(days=11)),
    "a property": Filter(properties={"plan": "pro"}),
}


def simulate(url: str, events: int, seed: int, start: datetime = START) -> None:
    args = ["simulate", "--events", str(events), "--users", "80", "--days", "14", "--seed", str(seed)]
    assert cli_main([*args, "--start", start.strftime("%Y-%m-%d"), "--database-url", url, "--quiet"]) == 0


def assert_same(got: Any, expected: Any, name: str) -> None:
    if isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(got, expected, obj=name)
    elif isinstance(expected, pd.Series):
        pd.testing.assert_series_equal(got, expected, obj=name)
    else:
        assert got == expected, name


def rollup_rows(engine: duckdb.DuckDBPyConnection, table: str) -> pd.DataFrame:
    keys = ["user_id", "day", "action", "source"]
    frame = engine.execute(f"SELECT * FROM {table}").df().sort_values(keys).reset_index(drop=True)
    assert not frame.duplicated(keys).any()
    return frame


def assert_rollup_current(engine: duckdb.DuckDBPyConnection) -> None:
    """The cache file's rollup is the aggregate of its events, row for row."""
    engine.execute(f"CREATE OR REPLACE TEMPORARY TABLE expected_rollup AS SELECT * FROM {rollups.TABLE} LIMIT 0")
    rollups.fill(engine, "expected_rollup", "events")
    pd.testing.assert_frame_equal(rollup_rows(engine, rollups.TABLE), rollup_rows(engine, "expected_rollup"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """3,000 simulated events over two weeks from a Monday, on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('rollups') / 'events.db'}"
        simulate(url, 3000, seed=21)
        yield url
    else:
        with fresh_schema("rollups") as url:
            simulate(url, 3000, seed=21)
            yield url


@pytest.fixture(scope="module")
def both(store: str) -> Iterator[tuple[analysis.Database, analysis.Database]]:
    """The same store read with the rollup and without (every question on the events)."""
    with analysis.connect(store) as with_rollup, analysis.connect(store, rollups=False) as events_only:
        yield with_rollup, events_only


@pytest.mark.parametrize("where", FILTERS.values(), ids=FILTERS.keys())
@pytest.mark.parametrize("name", QUESTIONS)
def test_the_rollup_answers_as_the_events_do(
    both: tuple[analysis.Database, analysis.Database], name: str, where: Filter | None
) -> None:
    with_rollup, events_only = both
    assert_same(QUESTIONS[name](with_rollup, where), QUESTIONS[name](events_only, where), name)


# funnel_by_cohort reads only the end of the data there
SERVED = [name for name in QUESTIONS if name != "funnel_by_cohort"]


@pytest.mark.parametrize("name", SERVED)
def test_each_question_reads_the_rollup(store: str, name: str) -> None:
    """The rollup altered (and only it: one user's rows gone, another's counts raised) changes every answer
    it serves: they come from the rollup, not from the events; a filter it cannot serve reads the events."""
    with analysis.connect(store) as db, analysis.connect(store, rollups=False) as events_only:
        before = QUESTIONS[name](db, None)
        busiest, second = usage.events_per_user(db).index[:2]
        engine = db.engine()
        engine.execute(f"DELETE FROM {rollups.TABLE} WHERE user_id = ?", [second])
        engine.execute(
            f"""UPDATE {rollups.TABLE} SET events = events + 1, no_sent_at = no_sent_at + 1,
                       metadata_empty = metadata_empty + 1 WHERE user_id = ?""",
            [busiest],
        )
        with pytest.raises(AssertionError):
            assert_same(QUESTIONS[name](db, None), before, name)
        unaligned = FILTERS["a time of day"]
        assert_same(QUESTIONS[name](db, unaligned), QUESTIONS[name](events_only, unaligned), name)


def test_the_cache_file_keeps_the_rollup_of_its_copy(store: str, tmp_path: Path) -> None:
    with analysis.connect(store, cache=tmp_path) as db:
        quality.overview(db)
        path = cache_file(tmp_path, db)
    with duckdb.connect(str(path)) as engine:
        assert engine.execute(f"SELECT SUM(events) FROM {rollups.TABLE}").fetchone() == (3000,)
        assert_rollup_current(engine)


def test_new_events_on_old_and_new_days_keep_the_rollup_equal_to_its_events(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    simulate(url, 3000, seed=21)
    cache = tmp_path / "cache"
    with analysis.connect(url, cache=cache) as db:
        quality.overview(db)
        path = cache_file(cache, db)
    simulate(url, 500, seed=22)  # the same two weeks: days the rollup already holds
    simulate(url, 300, seed=23, start=START + timedelta(days=10))  # and days past them
    with analysis.connect(url, cache=cache) as db, analysis.connect(url, rollups=False) as fresh:
        assert quality.overview(db)["events"] == 3800
        assert db.cache_use is not None
        assert (db.cache_use.state, db.cache_use.events_read) == ("warm", 800)
        for name, question in QUESTIONS.items():
            assert_same(question(db, None), question(fresh, None), name)
    with duckdb.connect(str(path)) as engine:
        assert_rollup_current(engine)


def test_rows_a_dead_run_left_past_the_mark_leave_the_rollup_too(tmp_path: Path) -> None:
    """A run that died after appending rows and rolling up their days, before it moved the mark: the next
    run drops those rows and rolls their days up again."""
    url = f"sqlite:///{tmp_path / 'events.db'}"
    simulate(url, 3000, seed=21)
    cache = tmp_path / "cache"
    with analysis.connect(url, cache=cache) as db:
        expected = {name: question(db, None) for name, question in QUESTIONS.items()}
        path = cache_file(cache, db)
    with duckdb.connect(str(path)) as engine:
        mark = engine.execute("SELECT through FROM state").fetchone()
        assert mark is not None
        engine.execute(
            """INSERT INTO events SELECT seq + 1000000, 'left-behind', action, source, ts + INTERVAL 30 DAY,
                                         received + INTERVAL 30 DAY, no_sent_at, session_id, metadata_empty
               FROM events WHERE seq <= 10"""
        )
        rollups.refresh_days(engine, rollups.TABLE, "events", rollups.days_of(engine, "events", int(mark[0])))
        found = engine.execute(f"SELECT SUM(events) FROM {rollups.TABLE} WHERE user_id = 'left-behind'").fetchone()
        assert found == (10,)
    with analysis.connect(url, cache=cache) as db:
        for name, question in QUESTIONS.items():
            assert_same(question(db, None), expected[name], name)
        found = db.row(f"SELECT COUNT(*) AS n FROM {CATALOG}.{rollups.TABLE} WHERE user_id = 'left-behind'")
        assert found["n"] == 0


def test_a_day_across_a_rolling_period_boundary_returns_in_both_periods(tmp_path: Path) -> None:
    """Rolling periods run from the user's own start time: a day can hold the end of one and the start of
    the next. Started Monday 12:00, back two weeks later at 10:00 (period 1) and 14:00 (period 2)."""
    import uuid

    from app.models import UserActionEvent
    from app.repository import open_repository

    url = f"sqlite:///{tmp_path / 'events.db'}"
    back = START + timedelta(days=14)
    times = {"u": [START + timedelta(hours=12), back + timedelta(hours=10), back + timedelta(hours=14)]}
    times["v"] = [START + timedelta(days=28)]  # so that both periods have begun
    repository = open_repository(url)
    try:
        events = [UserActionEvent(uuid.uuid4(), u, "page_view", t, "web", {}, t) for u, ts in times.items() for t in ts]
        repository.add(events)
    finally:
        repository.close()
    for use_rollup in (True, False):
        with analysis.connect(url, rollups=use_rollup) as db:
            table = retention.retention_table(db, period="rolling")
            first_week = table[table["cohort"] == pd.Timestamp(START)].set_index("offset")["users"]
            assert first_week.to_dict() == {0: 1, 1: 1, 2: 1}, use_rollup
