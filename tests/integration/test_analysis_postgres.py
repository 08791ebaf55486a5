"""The analysis package on PostgreSQL: it finds the simulator's planted facts, and answers as on SQLite.

The same simulated history is written by `python -m app simulate` (through the service's repository)
into a SQLite file and into a fresh PostgreSQL schema. The planted-fact suite of
test_analysis_recovery.py runs again on PostgreSQL, and every analysis is compared across the backends.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import psycopg
import pytest

import analysis
from analysis import (
    Breakdown,
    Database,
    Filter,
    funnel,
    lifecycle,
    metadata,
    quality,
    retention,
    sessions,
    temporal,
    trends,
    usage,
)
from app.cli import main as cli_main
from tests.integration import analysis_support as support
from tests.integration import test_analysis_recovery as recovery
from tests.support.postgres import fresh_schema

P = support.RECOVERY_PARAMS
STEPS = ("signup", "activate", "purchase")


def simulate_into_postgres(url: str) -> None:
    code = cli_main(
        [
            *("simulate", "--events", str(P.events), "--users", str(P.users), "--days", str(P.days)),
            *("--seed", str(P.seed), "--start", P.start.strftime("%Y-%m-%d"), "--database-url", url, "--quiet"),
        ]
    )
    assert code == 0


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with fresh_schema("analysis") as url:
        simulate_into_postgres(url)
        yield url


@pytest.fixture(scope="module")
def db(postgres_url: str) -> Iterator[Database]:
    """Overrides test_analysis_recovery's SQLite `db`: the same history, in PostgreSQL."""
    database = analysis.connect(postgres_url)
    yield database
    database.close()


@pytest.fixture(scope="module")
def on_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    database = analysis.connect(support.simulate_into(tmp_path_factory.mktemp("analysis") / "events.db", P))
    yield database
    database.close()


# -- the planted-fact suite, on PostgreSQL -------------------------------------------------------------
for _name in dir(recovery):
    if _name.startswith("test_"):
        globals()[_name] = getattr(recovery, _name)


# -- the same answers as SQLite ------------------------------------------------------------------------
ANALYSES: dict[str, Callable[[Database], Any]] = {
    "overview": quality.overview,
    "duplicate_event_ids": quality.duplicate_event_ids,
    "probable_retries": quality.probable_retries,
    "missing_values": quality.missing_values,
    "delivery_delay": quality.delivery_delay,
    "action_counts": usage.action_counts,
    "actions_by_source": usage.actions_by_source,
    "daily_active_users": usage.daily_active_users,
    "weekly_active_users": usage.weekly_active_users,
    # Users with equal counts come back in either order: compare as one sorted table.
    "events_per_user": lambda db: usage.events_per_user(db).sort_index().sort_values(kind="stable"),
    "hourly_series": temporal.hourly_series,
    "value_counts": lambda db: (
        metadata.value_counts(db)
        .sort_values(["action", "key", "type", "value"], key=lambda s: s.astype(str))
        .reset_index(drop=True)
    ),
    "key_frequencies": lambda db: (
        metadata.key_frequencies(metadata.value_counts(db))
        .sort_values(["action", "key", "type"])
        .reset_index(drop=True)
    ),
    "top_plan_values": lambda db: metadata.top_values(db, "signup", "plan"),
    "amount_summary": lambda db: metadata.numeric_summary(db, "purchase", "amount"),
    "amount_histogram": lambda db: metadata.numeric_histogram(db, "purchase", "amount"),
    "funnel": funnel.funnel,
    "cohort_counts": retention.cohort_counts,
    # The analyst's questions, with a filter and a breakdown on each that takes one.
    "trends_by_plan": lambda db: trends.trends(db, "week", breakdown=Breakdown.by_property("plan", top=2)),
    "trends_ios": lambda db: trends.trends(db, "day", where=Filter(source="ios")),
    "property_sum": lambda db: trends.property_sum(db, "amount", "week"),
    "active_users": trends.active_users,
    "funnel_by_source": lambda db: funnel.funnel(db, breakdown=Breakdown.by_source(), where=Filter(action=STEPS)),
    "funnel_by_cohort": funnel.funnel_by_cohort,
    "retention_rolling_by_source": lambda db: retention.retention_table(
        db, period="rolling", breakdown=Breakdown.by_source()
    ),
    "retention_purchase": lambda db: retention.retention_table(db, "purchase", "purchase"),
    "lifecycle": lifecycle.lifecycle,
    "lifecycle_pro": lambda db: lifecycle.lifecycle(db, where=Filter(properties={"plan": "pro"})),
    "stickiness": lifecycle.stickiness,
    "session_summary": sessions.session_summary,
    "session_summary_gap": lambda db: sessions.session_summary(db, use_session_id=False),
    "session_lengths": sessions.session_lengths,
    "events_per_session": sessions.events_per_session,
    "top_paths": lambda db: sessions.top_paths(db, "page_view"),
    "amount_by_currency": lambda db: metadata.numeric_summary_by_unit(db, "purchase", "amount"),
}


def assert_same(left: Any, right: Any) -> None:
    if isinstance(left, pd.DataFrame):
        pd.testing.assert_frame_equal(left, right, check_dtype=False, check_index_type=False)
    elif isinstance(left, pd.Series):
        pd.testing.assert_series_equal(left, right, check_dtype=False, check_index_type=False)
    else:
        assert left.keys() == right.keys()
        for key, value in left.items():
            other = right[key]
            assert value == other or (isinstance(value, float) and math.isclose(value, other)), (key, value, other)
            assert type(value) is type(other) or {type(value), type(other)} <= {int, float}, (key, value, other)


@pytest.mark.parametrize("name", ANALYSES)
def test_postgresql_answers_as_sqlite_does(on_sqlite: Database, db: Database, name: str) -> None:
    assert_same(ANALYSES[name](on_sqlite), ANALYSES[name](db))


def test_the_analysis_connection_cannot_write(db: Database) -> None:
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        db.store_rows("CREATE TABLE intruder (x int)")


def test_a_database_the_service_never_ran_on_is_refused_clearly() -> None:
    with fresh_schema("empty") as url, pytest.raises(analysis.DatabaseNotFound, match="no events table"):
        analysis.connect(url)
