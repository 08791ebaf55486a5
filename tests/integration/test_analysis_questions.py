"""The analyst's questions (trends, funnels with windows, retention periods, lifecycle, stickiness,
sessions, paths, units, filters and breakdowns) on a simulated history with every new pattern planted
(analysis_support.PLANTED_PARAMS): each planted value is recovered within a stated tolerance, and each
aggregate agrees exactly with an independent count through another function or a Filter.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from analysis import (
    Breakdown,
    Database,
    Filter,
    connect,
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
from app.simulation import ENGAGEMENT_ACTIONS
from tests.integration.analysis_support import PLANTED_PARAMS, write_through_repository

P = PLANTED_PARAMS


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    database = connect(write_through_repository(tmp_path_factory.mktemp("questions") / "events.db", P))
    yield database
    database.close()


# -- filters and breakdowns ------------------------------------------------------------------------------
def test_a_source_filter_keeps_that_source_only(db: Database) -> None:
    by_source = usage.actions_by_source(db)
    ios = usage.action_counts(db, where=Filter(source="ios"))
    assert ios["events"].to_dict() == {a: n for a, n in by_source["ios"].items() if n}


def test_a_time_range_filter_is_start_inclusive_end_exclusive(db: Database) -> None:
    hourly = temporal.hourly_series(db)
    start, end = P.start + timedelta(days=3), P.start + timedelta(days=10)
    expected = int(hourly[(hourly.index >= start) & (hourly.index < end)].sum())
    assert quality.overview(db, where=Filter(start=start, end=end))["events"] == expected


def test_a_property_filter_counts_the_events_holding_that_value(db: Database) -> None:
    plans = metadata.top_values(db, "signup", "plan")  # signups are under the sample cap: exact counts
    pro = int(plans.loc[plans["value"] == "pro", "events"].iloc[0])
    counted = usage.action_counts(db, where=Filter(action="signup", properties={"plan": "pro"}))
    assert int(counted.loc["signup", "events"]) == pro


def test_a_breakdown_splits_without_losing_events_and_keeps_top_n_plus_other(db: Database) -> None:
    whole = trends.trends(db, "week")
    split = trends.trends(db, "week", breakdown=Breakdown.by_property("page", top=2))
    assert split["events"].sum() == whole["events"].sum()
    assert set(split["segment"]) <= {"/home", "/docs", "other", "(none)"} | set(P.pages)
    assert len(set(split["segment"]) - {"other"}) == 2  # the two busiest values, the rest merged
    by_source = funnel.funnel(db, breakdown=Breakdown.by_source())
    assert by_source.groupby("action", sort=False)["users"].sum().to_dict() == (
        funnel.funnel(db).set_index("action")["users"].to_dict()
    )


# -- trends --------------------------------------------------------------------------------------------
def test_trends_count_events_and_users_per_action_beside_the_period_before(db: Database) -> None:
    weekly = trends.trends(db, "week")
    totals = weekly.groupby("action")["events"].sum()
    assert totals.to_dict() == usage.action_counts(db)["events"].to_dict()
    clicks = weekly[weekly["action"] == "click"].reset_index(drop=True)
    assert math.isnan(clicks.loc[0, "previous_events"])
    assert clicks["previous_events"].iloc[1:].tolist() == clicks["events"].iloc[:-1].astype(float).tolist()
    assert bool(weekly["complete"].all())  # 28 days from a Monday: four whole weeks


def test_amounts_are_summed_per_currency_never_across(db: Database) -> None:
    sums = trends.property_sum(db, "amount", "week")
    assert set(sums["unit"]) == set(P.currency_mix)
    per_unit = metadata.numeric_summary_by_unit(db, "purchase", "amount", sample=10**9)
    for currency, row in per_unit.iterrows():
        total = sums.loc[sums["unit"] == currency, "total"].sum()
        assert total == pytest.approx(row["count"] * row["mean"], rel=1e-9)


def test_rolling_active_users_match_a_direct_count(db: Database) -> None:
    active = trends.active_users(db)
    day = active.index[20]
    for column, days in (("wau", 7), ("mau", 30)):
        window = Filter(start=day - timedelta(days=days - 1), end=day + timedelta(days=1))
        assert active.loc[day, column] == quality.overview(db, where=window)["users"], column
    assert active.loc[day, "dau"] == usage.daily_active_users(db)[day]
    assert active.loc[day, "stickiness"] == pytest.approx(active.loc[day, "dau"] / active.loc[day, "mau"])
    assert not active["mau_complete"].any()  # 28 days of data: no 30-day window is whole
    assert active["wau_complete"].sum() == P.days - 6


# -- funnel --------------------------------------------------------------------------------------------
def test_time_to_activate_follows_the_planted_exponential(db: Database) -> None:
    steps = funnel.funnel(db, window=None).set_index("action")
    mean = P.activation_delay_mean_seconds
    # ~600 activations: 3 standard errors of the median is about 18 %, of the p90 about 16 %.
    assert steps.loc["activate", "median_seconds"] == pytest.approx(mean * math.log(2), rel=0.2)
    assert steps.loc["activate", "p90_seconds"] == pytest.approx(mean * math.log(10), rel=0.2)
    assert steps.loc["activate", "step_conversion"] == pytest.approx(P.activation_rate, abs=0.05)


def test_the_conversion_window_bounds_each_step(db: Database) -> None:
    unlimited = funnel.funnel(db, window=None).set_index("action")["users"]
    default = funnel.funnel(db).set_index("action")["users"]  # 14 days, PostHog's default
    hour = funnel.funnel(db, window=timedelta(hours=1)).set_index("action")["users"]
    assert hour["purchase"] < default["purchase"] <= unlimited["purchase"]
    # An hour holds nearly every activation (exponential, mean 10 min: 0.25 % come later).
    assert hour["activate"] == pytest.approx(unlimited["activate"], rel=0.02)


def test_funnel_by_entry_week_covers_every_user_and_flags_open_windows(db: Database) -> None:
    cohorts = funnel.funnel_by_cohort(db)
    assert cohorts["signup"].sum() == P.users
    assert cohorts["purchase"].sum() == funnel.funnel(db).set_index("action").loc["purchase", "users"]
    # A cohort is complete once its last member's 14-day window has closed: the first two weeks only.
    assert cohorts["complete"].tolist() == [True, True, False, False]


# -- retention -----------------------------------------------------------------------------------------
def test_rolling_retention_marks_periods_that_run_past_the_data(db: Database) -> None:
    table = retention.retention_table(db, period="rolling")
    last_week = table[table["cohort"] == table["cohort"].max()]
    assert not last_week[last_week["offset"] > 0]["complete"].any()
    curve = retention.retention_curve(db, period="rolling")
    done = table[table["complete"]]
    for offset, value in curve.items():
        cells = done[done["offset"] == offset]
        assert value == pytest.approx(cells["users"].sum() / cells["cohort_users"].sum())


def test_retention_from_a_start_event_to_a_return_event(db: Database) -> None:
    buyers = retention.retention_table(db, start_action="purchase", return_action="purchase")
    first = buyers[buyers["offset"] == 0]
    assert first["cohort_users"].sum() == usage.action_counts(db).loc["purchase", "users"]
    # Repeat purchases are rare (repeat_purchase_rate 0.1 a later session): far below general retention.
    later = buyers[(buyers["offset"] == 1) & buyers["complete"]]
    general = retention.retention_curve(db)
    assert later["users"].sum() / later["cohort_users"].sum() < general[1]


# -- lifecycle and stickiness --------------------------------------------------------------------------
def test_lifecycle_finds_the_planted_resurrected_users(db: Database) -> None:
    weeks = lifecycle.lifecycle(db)
    winback = usage.action_counts(db, where=Filter(properties={"campaign": "winback"}))
    planted = int(quality.overview(db, where=Filter(properties={"campaign": "winback"}))["users"])
    # Each user gone with two weeks left comes back with probability 0.3: dozens among 1000 users.
    assert planted > 20
    assert int(weeks["resurrecting"].sum()) == planted  # exactly the win-back users, nobody else
    assert winback["events"].sum() >= planted
    wau = usage.weekly_active_users(db)
    assert (weeks[["new", "returning", "resurrecting"]].sum(axis=1).to_numpy() == wau.to_numpy()).all()
    sizes = retention.cohort_counts(db)[0]
    assert weeks["new"].tolist() == sizes.astype(int).tolist()


def test_stickiness_spreads_each_weeks_users_over_their_active_days(db: Database) -> None:
    table = lifecycle.stickiness(db)
    wau = usage.weekly_active_users(db)
    assert table[list(range(1, 8))].sum(axis=1).tolist() == wau.tolist()
    assert (table[1] > table[7]).all()


# -- sessions and paths --------------------------------------------------------------------------------
def test_session_lengths_recover_the_planted_event_gap(db: Database) -> None:
    # Engagement events only: the signup -> activate gap has its own planted mean (10 minutes).
    summary = sessions.session_summary(db, where=Filter(action=ENGAGEMENT_ACTIONS))
    # Sum of lengths / sum of (events - 1) is the mean gap between a session's events (retries add a few
    # zero gaps, squeezed session tails a few short ones).
    gap = summary["mean_seconds"] / (summary["mean_events"] - 1)
    assert gap == pytest.approx(P.mean_event_gap_seconds, rel=0.1)


def test_an_inactivity_gap_finds_about_the_same_sessions_as_session_ids(db: Database) -> None:
    by_id = sessions.session_summary(db)["sessions"]
    by_gap = sessions.session_summary(db, use_session_id=False)["sessions"]
    # Gaps within a session are exponential (mean 90 s, 10 min for signup -> activate), so 30 minutes of
    # silence almost never splits one; it merges a user's sessions that start within 30 min of each other.
    assert 0.85 * by_id <= by_gap <= 1.01 * by_id
    lengths = sessions.session_lengths(db)
    assert lengths["sessions"].sum() == by_id
    assert sessions.events_per_session(db).sum() == by_id


def test_top_paths_after_signup_start_with_the_planted_activation(db: Database) -> None:
    paths = sessions.top_paths(db, "signup", steps=3)
    assert len(paths) <= 10
    assert paths.loc[0, "path"].startswith("activate")
    activated = paths[paths["path"].str.startswith("activate")]["share"].sum()
    assert activated == pytest.approx(P.activation_rate, abs=0.06)


# -- units ---------------------------------------------------------------------------------------------
def test_amounts_are_summarised_per_currency_as_planted(db: Database) -> None:
    per_unit = metadata.numeric_summary_by_unit(db, "purchase", "amount")
    assert list(per_unit.index) == sorted(P.currency_mix)
    shares = per_unit["count"] / per_unit["count"].sum()
    for currency, share in P.currency_mix.items():
        assert shares[currency] == pytest.approx(share, abs=0.08)  # ~400 purchases
        expected = P.purchase_amount_median * P.currency_rates[currency]
        assert per_unit.loc[currency, "p50"] == pytest.approx(expected, rel=0.2), currency


def test_filters_work_on_every_question(db: Database) -> None:
    web = Filter(source="web", start=datetime(2026, 1, 12, tzinfo=UTC))
    assert quality.overview(db, where=web)["first_timestamp"] >= datetime(2026, 1, 12, tzinfo=UTC)
    assert set(trends.trends(db, where=web)["action"]) <= set(usage.action_counts(db, where=web).index)
    assert funnel.funnel(db, where=web)["users"].iloc[0] == usage.action_counts(db, where=web).loc["signup", "users"]
    assert lifecycle.lifecycle(db, where=web).index.min() == pd.Timestamp("2026-01-12", tz="UTC")
    assert sessions.session_summary(db, where=web)["sessions"] < sessions.session_summary(db)["sessions"]
