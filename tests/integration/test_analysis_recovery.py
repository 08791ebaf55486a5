"""The simulator plants known facts; the analysis package must find each again within a stated tolerance.

One simulated database (40k events, 1000 users, 28 days) written through `python -m app simulate` and the
real SQLite repository, read back read-only by the analysis package.
"""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from analysis import Database, connect, funnel, metadata, quality, retention, temporal, usage
from tests.integration.analysis_support import RECOVERY_PARAMS, simulate_into

P = RECOVERY_PARAMS


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Database:
    url = simulate_into(tmp_path_factory.mktemp("analysis") / "events.db", P)
    database = connect(url)
    yield database
    database.close()


def test_every_simulated_event_is_stored_and_counted(db: Database) -> None:
    info = quality.overview(db)
    assert info["events"] == P.events
    assert info["users"] == P.users
    assert P.start <= info["first_timestamp"]
    assert info["last_timestamp"] < P.start + timedelta(days=P.days)


def test_peak_hour_within_one_hour_of_the_planted_one(db: Database) -> None:
    peak = temporal.peak_hours(temporal.hourly_series(db))[0]
    circular_distance = min((peak - P.peak_hour) % 24, (P.peak_hour - peak) % 24)
    assert circular_distance <= 1, peak


def test_night_trough_reflects_the_daily_amplitude(db: Database) -> None:
    profile = temporal.hour_of_day_profile(temporal.hourly_series(db))
    expected = (1 - P.daily_amplitude) / (1 + P.daily_amplitude)  # trough / peak of the planted cosine
    assert profile.min() / profile.max() == pytest.approx(expected, abs=0.08)


def test_top_action_is_the_heaviest_in_the_planted_mix(db: Database) -> None:
    mix = P.overall_action_mix()
    assert usage.top_action(db) == max(mix, key=mix.__getitem__)


def test_action_mix_differs_by_source_as_planted(db: Database) -> None:
    counts = usage.actions_by_source(db)
    for source, profile in P.sources.items():
        engagement = counts.loc[list(profile.action_mix), source]  # funnel actions aside
        shares = engagement / engagement.sum()
        planted = sum(profile.action_mix.values())
        for action, weight in profile.action_mix.items():
            assert shares[action] == pytest.approx(weight / planted, abs=0.03), (action, source)
    # The planted mixes differ: clicks lead on ios, page views on web.
    normalized = usage.actions_by_source(db, normalize=True)
    assert normalized["ios"].idxmax() == "click"
    assert normalized["web"].idxmax() == "page_view"


def test_funnel_step_conversion_matches_planted_rates(db: Database) -> None:
    steps = funnel.funnel(db, ("signup", "activate", "purchase")).set_index("action")
    assert steps.loc["signup", "users"] == P.users  # everyone signs up once
    # Binomial noise on ~1000 and ~600 users: 3 standard errors is about 0.05 and 0.06.
    assert steps.loc["activate", "step_conversion"] == pytest.approx(P.activation_rate, abs=0.05)
    assert steps.loc["purchase", "step_conversion"] == pytest.approx(P.purchase_rate, abs=0.06)


def test_funnel_counts_only_steps_taken_in_order(db: Database) -> None:
    reversed_steps = funnel.funnel(db, ("purchase", "signup")).set_index("action")
    # Every signup precedes that user's purchases, so nobody signs up after buying.
    assert reversed_steps.loc["signup", "users"] == 0


def test_plan_distribution_at_signup_matches_planted_mix(db: Database) -> None:
    shares = metadata.value_distribution(db, "signup", "plan")
    for plan, weight in P.plan_mix.items():
        assert shares[plan] == pytest.approx(weight, abs=0.04), plan  # ~1000 signups: 3 SE <= 0.043


def test_null_referrer_share_matches_planted_fraction(db: Database) -> None:
    values = metadata.top_values(db, "page_view", "referrer")
    null_share = float(values.loc[values["type"] == "null", "share"].sum())
    assert null_share == pytest.approx(P.null_referrer_fraction, abs=0.02)


def test_purchase_amount_median_matches_the_planted_log_normal(db: Database) -> None:
    summary = metadata.numeric_summary(db, "purchase", "amount")
    assert summary["count"] > 200
    assert summary["p50"] == pytest.approx(P.purchase_amount_median, rel=0.15)
    # Log-normal: mean = median * exp(sigma^2 / 2).
    assert summary["mean"] == pytest.approx(
        P.purchase_amount_median * math.exp(P.purchase_amount_sigma**2 / 2), rel=0.15
    )


def test_a_sample_estimates_the_same_distribution(db: Database) -> None:
    sampled = metadata.top_values(db, "page_view", "referrer", sample=5_000)
    null_share = float(sampled.loc[sampled["type"] == "null", "share"].sum())
    assert null_share == pytest.approx(P.null_referrer_fraction, abs=0.04)  # ~5k page views read, not ~14k


def test_the_sample_is_taken_per_action_so_rare_actions_are_read_whole(db: Database) -> None:
    counts = metadata.value_counts(db, sample=2_000)
    events, read = counts.attrs["action_events"], counts.attrs["action_sampled"]
    assert events["page_view"] > 5 * 2_000
    assert read["page_view"] == pytest.approx(2_000, rel=0.1)  # a busy action: about the cap
    for action in ("signup", "purchase"):  # under the cap: every event, so their numbers are exact
        assert read[action] == events[action]
    whole = metadata.numeric_summary(db, "purchase", "amount", sample=10**9)
    assert metadata.numeric_summary(db, "purchase", "amount", sample=2_000) == whole


def test_metadata_keys_depend_on_the_action(db: Database) -> None:
    frequencies = metadata.key_frequencies(metadata.value_counts(db, sample=P.events))
    assert frequencies.attrs["sampled_events"] == P.events  # a cap above every action's count reads them all
    presence = metadata.key_presence(frequencies)
    assert presence.loc["purchase", "amount"] == 1.0
    assert presence.loc["page_view", "amount"] == 0.0
    assert presence.loc["signup", "plan"] == 1.0
    types = metadata.value_types(frequencies).set_index(["action", "key"])
    assert types.loc[("page_view", "referrer"), "types"] == "null, text"


def test_week_one_retention_matches_planted_weekly_retention(db: Database) -> None:
    curve = retention.retention_curve(db)
    # ~750 users observable one week later: 3 standard errors is about 0.05.
    assert curve[1] == pytest.approx(P.weekly_retention, abs=0.05)
    assert curve[2] == pytest.approx(P.weekly_retention**2, abs=0.06)


def test_retention_matrix_leaves_unobservable_cells_empty(db: Database) -> None:
    matrix = retention.retention_matrix(db)
    assert len(matrix) == math.ceil(P.days / 7)
    last_cohort = matrix.iloc[-1]
    assert last_cohort[0] == 1.0
    assert math.isnan(last_cohort[1])


def test_planted_spike_day_is_the_strongest_anomaly(db: Database) -> None:
    assert P.spike_day is not None
    anomalies = temporal.daily_anomalies(temporal.daily_series(temporal.hourly_series(db)))
    flagged = anomalies[anomalies["anomaly"]]
    assert list(flagged.index.date) == [(P.start + timedelta(days=P.spike_day)).date()]


def test_weekends_are_quieter_as_planted(db: Database) -> None:
    profile = temporal.weekday_profile(temporal.daily_series(temporal.hourly_series(db)))
    assert max(profile["Sat"], profile["Sun"]) < min(profile[d] for d in ("Mon", "Tue", "Wed", "Thu"))


def test_late_events_share_matches_planted_fraction(db: Database) -> None:
    # Late events are delayed by an exponential with mean late_mean_seconds; those past one hour:
    expected = P.late_fraction * math.exp(-3600 / P.late_mean_seconds)
    assert quality.late_share(quality.delivery_delay(db), 3600) == pytest.approx(expected, abs=0.004)


def test_client_retries_are_found_and_ids_are_unique(db: Database) -> None:
    assert quality.probable_retries(db)["extra_copies"] == round(P.events * P.retry_duplicate_fraction)
    assert quality.duplicate_event_ids(db) == {"ids": 0, "extra_rows": 0}


def test_activity_follows_a_power_law(db: Database) -> None:
    per_user = usage.events_per_user(db)
    # Pareto(1.3) weights: the top 10 % of users produce far more than 10 % of events.
    assert usage.top_users_share(per_user, 0.10) > 0.4
    assert per_user.median() < per_user.mean()


def test_only_sent_at_has_missing_values_and_only_from_web(db: Database) -> None:
    missing = quality.missing_values(db)
    web_events = int(usage.actions_by_source(db)["web"].sum())
    assert missing["sent_at"] == web_events
    assert missing.drop("sent_at").sum() == 0


def test_active_users_are_counted_per_day_and_week(db: Database) -> None:
    daily, weekly = usage.daily_active_users(db), usage.weekly_active_users(db)
    assert len(daily) == P.days
    assert len(weekly) == math.ceil(P.days / 7)
    assert (weekly.to_numpy() <= P.users).all()
    assert daily.max() <= weekly.max()


def test_the_analysis_connection_cannot_write(db: Database) -> None:
    import sqlite3

    with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only"):
        db.connection.cursor().execute("INSERT INTO schema_version VALUES (99, 'x')")


def test_a_missing_database_is_reported_not_created(tmp_path: Path) -> None:
    from analysis import DatabaseNotFound

    with pytest.raises(DatabaseNotFound):
        connect(f"sqlite:///{tmp_path / 'absent.db'}")
    assert not (tmp_path / "absent.db").exists()


def test_views_of_one_sample_pass_agree_with_their_own_queries(db: Database) -> None:
    counts = metadata.value_counts(db)
    assert metadata.numeric_summary_in(counts, "purchase", "amount") == pytest.approx(
        metadata.numeric_summary(db, "purchase", "amount")
    )
    from_counts = metadata.top_values_in(counts, "signup", "plan")
    from_query = metadata.top_values(db, "signup", "plan")
    assert from_counts[["value", "events"]].to_dict("list") == from_query[["value", "events"]].to_dict("list")
    histogram = metadata.numeric_histogram_in(counts, "purchase", "amount", bins=10)
    assert histogram["events"].sum() == metadata.numeric_histogram(db, "purchase", "amount", bins=10)["events"].sum()


def test_value_counts_read_every_key_however_it_is_spelled(tmp_path: Path) -> None:
    """Keys holding the characters a JSON path or pointer gives a meaning to, and every JSON type."""
    import uuid
    from datetime import UTC, datetime

    from app.models import UserActionEvent
    from app.repository import open_repository

    odd = {"a.b": 1, "$x": "y", "/p": 2.5, 'q"r': True, "t~1": [1, 2], "e": {"f": 1}, "n": None, "": -3, "s p": "z"}
    url = f"sqlite:///{tmp_path / 'events.db'}"
    repository = open_repository(url)
    try:
        now = datetime.now(UTC)
        repository.add([UserActionEvent(uuid.uuid4(), "u1", "odd", now, "web", odd, now)])
        repository.add([UserActionEvent(uuid.uuid4(), "u2", "odd", now, "web", {"a.b": 1, "$x": False}, now)])
    finally:
        repository.close()
    with connect(url) as odd_db:
        counts = metadata.value_counts(odd_db)
    found = {(r.key, r.type, None if pd.isna(r.value) else r.value, r.events) for r in counts.itertuples()}
    assert found == {
        ("a.b", "integer", "1", 2),
        ("$x", "text", "y", 1),
        ("$x", "false", "false", 1),
        ("/p", "real", "2.5", 1),
        ('q"r', "true", "true", 1),
        ("t~1", "array", None, 1),
        ("e", "object", None, 1),
        ("n", "null", None, 1),
        ("", "integer", "-3", 1),
        ("s p", "text", "z", 1),
    }
