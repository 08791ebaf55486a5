"""The sessions kept with the events (analysis/session_paths.py), on a real SQLite file and the real
PostgreSQL server: the session summary, lengths and paths read them and answer exactly as grouping the events
does; other filters, gaps and keys read the events; the cache keeps them right when events extend a session,
arrive late between a user's inactivity sessions, or were left past the mark by a dead run."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

import analysis
from analysis import Filter, session_paths, sessions
from analysis.cache import CATALOG, cache_file
from app.cli import main as cli_main
from app.models import UserActionEvent
from app.repository import open_repository
from tests.support.postgres import fresh_schema

START = datetime(2026, 1, 5, tzinfo=UTC)

Question = Callable[[analysis.Database], Any]
QUESTIONS: dict[str, Question] = {
    "session_summary": sessions.session_summary,
    "session_lengths": sessions.session_lengths,
    "events_per_session": sessions.events_per_session,
    "paths after page_view": lambda db: sessions.top_paths(db, "page_view"),
    "paths after signup": lambda db: sessions.top_paths(db, "signup", steps=2, top=5),
    "paths after click, 5 steps": lambda db: sessions.top_paths(db, "click", steps=5),
}
# the kept sessions cannot serve these: the questions group the events
OTHERS: dict[str, Question] = {
    "summary of ios": lambda db: sessions.session_summary(db, where=Filter(source="ios")),
    "summary by gaps only": lambda db: sessions.session_summary(db, use_session_id=False),
    "paths with a 5-minute gap": lambda db: sessions.top_paths(db, "page_view", gap=timedelta(minutes=5)),
}


def simulate(url: str, events: int, seed: int) -> None:
    args = ["simulate", "--events", str(events), "--users", "80", "--days", "14", "--seed", str(seed)]
    assert cli_main([*args, "--start", START.strftime("%Y-%m-%d"), "--database-url", url, "--quiet"]) == 0


def add(url: str, rows: list[tuple[str, str, datetime, str | None]]) -> None:
    """(user, action, time, session id or None) rows, through the real repository."""
    repository = open_repository(url)
    try:
        repository.add(
            [
                UserActionEvent(uuid.uuid4(), user, action, t, "web", {"session_id": sid} if sid else {}, t)
                for user, action, t, sid in rows
            ]
        )
    finally:
        repository.close()


def assert_same(got: Any, expected: Any, name: str) -> None:
    if isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(got, expected, obj=name)
    elif isinstance(expected, pd.Series):
        pd.testing.assert_series_equal(got, expected, obj=name)
    else:
        assert got == expected, name


def assert_kept_current(path: Path) -> None:
    """The cache file's sessions are those of its events, row for row."""
    with duckdb.connect(str(path)) as engine:
        engine.execute(f"CREATE TEMPORARY TABLE expected AS SELECT * FROM {session_paths.TABLE} LIMIT 0")
        session_paths.fill(engine, "expected", "events")
        keys = ["user_id", "session"]
        kept = engine.execute(f"SELECT * FROM {session_paths.TABLE}").df().sort_values(keys).reset_index(drop=True)
        fresh = engine.execute("SELECT * FROM expected").df().sort_values(keys).reset_index(drop=True)
    assert not kept.duplicated(keys).any()
    pd.testing.assert_frame_equal(kept, fresh)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """3,000 simulated events, and one user's events without a session id, on each backend."""
    untagged = [("no-ids", a, START + timedelta(minutes=m), None) for a, m in (("page_view", 0), ("click", 5))]
    untagged += [("no-ids", "page_view", START + timedelta(minutes=90), None)]
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sessions') / 'events.db'}"
        simulate(url, 3000, seed=31)
        add(url, untagged)
        yield url
    else:
        with fresh_schema("sessions") as url:
            simulate(url, 3000, seed=31)
            add(url, untagged)
            yield url


@pytest.mark.parametrize("name", [*QUESTIONS, *OTHERS])
def test_kept_sessions_answer_as_the_events_do(store: str, name: str) -> None:
    question = {**QUESTIONS, **OTHERS}[name]
    with analysis.connect(store) as kept, analysis.connect(store, rollups=False) as events_only:
        assert_same(question(kept), question(events_only), name)


@pytest.mark.parametrize("name", QUESTIONS)
def test_the_session_questions_read_the_kept_sessions(store: str, name: str) -> None:
    """Sessions taken out of the kept table (and only there) change every answer it serves; the others
    still group the events."""
    with analysis.connect(store) as db, analysis.connect(store, rollups=False) as events_only:
        before = QUESTIONS[name](db)
        db.engine().execute(f"DELETE FROM {session_paths.TABLE} WHERE hash(user_id, session) % 2 = 0")
        with pytest.raises(AssertionError):
            assert_same(QUESTIONS[name](db), before, name)
        for other, question in OTHERS.items():
            assert_same(question(db), question(events_only), other)


def test_events_that_extend_split_or_join_sessions_keep_the_cache_right(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    simulate(url, 3000, seed=31)
    gaps = [("gaps", "page_view", START + timedelta(minutes=m), None) for m in (0, 10, 100, 200)]
    add(url, [*gaps, ("tagged", "page_view", START, "s-1"), ("tagged", "click", START + timedelta(minutes=1), "s-1")])
    cache = tmp_path / "cache"
    with analysis.connect(url, cache=cache) as db:
        sessions.session_summary(db)
        path = cache_file(cache, db)
    simulate(url, 400, seed=32)
    add(
        url,
        [
            ("tagged", "purchase", START + timedelta(minutes=2), "s-1"),  # extends a kept session
            ("gaps", "click", START + timedelta(minutes=40), None),  # 10 -> 40 -> 100: splits none, ...
            ("gaps", "click", START + timedelta(minutes=70), None),  # ... and with it joins 10 to 100
            ("gaps", "signup", START - timedelta(minutes=50), None),  # a session before all the others
        ],
    )
    with analysis.connect(url, cache=cache) as db, analysis.connect(url, rollups=False) as events_only:
        for name, question in QUESTIONS.items():
            assert_same(question(db), question(events_only), name)
        assert db.cache_use is not None
        assert (db.cache_use.state, db.cache_use.events_read) == ("warm", 404)
        kept = db.frame(f"SELECT session, actions FROM {CATALOG}.{session_paths.TABLE} WHERE user_id = 'gaps'")
        joined = {s: list(a) for s, a in zip(kept["session"], kept["actions"], strict=True)}
        assert joined == {
            "~1": ["signup"],
            "~2": ["page_view", "page_view", "click", "click", "page_view"],
            "~3": ["page_view"],
        }
        tagged = db.row(f"SELECT actions FROM {CATALOG}.{session_paths.TABLE} WHERE session = 's-1'")
        assert list(tagged["actions"]) == ["page_view", "click", "purchase"]
    assert_kept_current(path)


def test_sessions_a_dead_run_left_past_the_mark_are_computed_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    simulate(url, 3000, seed=31)
    cache = tmp_path / "cache"
    with analysis.connect(url, cache=cache) as db:
        expected = {name: question(db) for name, question in QUESTIONS.items()}
        path = cache_file(cache, db)
    with duckdb.connect(str(path)) as engine:
        mark = engine.execute("SELECT through FROM state").fetchone()
        assert mark is not None
        # a copy of every event, past the mark, in the very same sessions: every session doubles
        engine.execute("INSERT INTO events SELECT seq + 1000000, * EXCLUDE (seq) FROM events")
        session_paths.touched(engine, "events", int(mark[0]))
        session_paths.refresh_touched(engine, session_paths.TABLE, "events")
        assert engine.execute(f"SELECT SUM(events) FROM {session_paths.TABLE}").fetchone() == (6000,)
    with analysis.connect(url, cache=cache) as db:
        for name, question in QUESTIONS.items():
            assert_same(question(db), expected[name], name)
    assert_kept_current(path)
