"""The report's writing rules, on the helpers every section goes through: shares as '60.5 %', no NaN, no
index column, no '+00:00', a password never shown, a 'peak' named only when the data single one out,
partial periods found, charts refused without labels, heatmap text readable on its cell."""

from __future__ import annotations

from datetime import UTC, datetime

import matplotlib

matplotlib.use("agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from analysis.charts import UnlabelledChart, cell_text_colour, check_labels
from analysis.peaks import hour_samples, hours_text, tied_with_top
from analysis.presentation import (
    header_html,
    percent,
    period_is_partial,
    public_url,
    size_warning,
    table,
    value_label,
)


def test_shares_are_written_as_percentages_with_one_decimal() -> None:
    assert percent(0.605) == "60.5 %"
    assert percent(0.9597) == "96.0 %"
    assert percent(float("nan")) == "–"
    assert percent(None) == "–"


def test_a_table_has_no_index_column_no_nan_and_no_utc_offset() -> None:
    frame = pd.DataFrame(
        {
            "events": [19202, 6],
            "share": [0.9601, 0.0003],
            "first_seen": pd.to_datetime(["2026-01-05T03:06:21+00:00", "2026-01-06T00:00:00+00:00"]),
            "step_conversion": [1.0, float("nan")],
        },
        index=pd.Index(["< 1 s", ">= 1 day"], name="bucket"),
    )
    shown = table(frame)
    assert shown.columns == ("bucket", "events", "share", "first seen", "step conversion")
    assert shown.rows == (
        ("< 1 s", "19,202", "96.0 %", "2026-01-05 03:06 UTC", "100.0 %"),
        (">= 1 day", "6", "0.0 %", "2026-01-06", "–"),
    )
    rendered = shown._repr_html_()
    assert "NaN" not in rendered
    assert "+00:00" not in rendered
    assert "<th></th>" not in rendered  # the empty corner a pandas index leaves


def test_a_range_index_is_dropped_not_shown_as_numbers() -> None:
    shown = table(pd.DataFrame({"action": ["signup", "purchase"], "users": [500, 103]}))
    assert shown.columns == ("action", "users")
    assert shown.rows[0] == ("signup", "500")


def test_the_database_url_is_shown_without_its_password() -> None:
    assert public_url("postgresql://telemetry:s3cret@db.internal:5432/events") == (
        "postgresql://telemetry@db.internal:5432/events"
    )
    assert public_url("sqlite:////srv/data/telemetry.db") == "sqlite:////srv/data/telemetry.db"


def test_the_header_names_database_events_time_range_generation_time_and_version() -> None:
    overview = {
        "events": 20000,
        "first_timestamp": datetime(2026, 1, 5, 3, 6, tzinfo=UTC),
        "last_timestamp": datetime(2026, 1, 25, 23, 59, tzinfo=UTC),
    }
    text = header_html("postgresql://u:pw@h/db", overview, datetime(2026, 12, 1, 17, 0, tzinfo=UTC), version="0.1.0")
    for expected in (
        "<dt>Database</dt><dd>postgresql://u@h/db</dd>",
        "<dt>Events</dt><dd>20,000</dd>",
        "<dt>Time range</dt><dd>2026-01-05 03:06 UTC to 2026-01-25 23:59 UTC</dd>",
        "<dt>Generated at</dt><dd>2026-12-01 17:00 UTC</dd>",
        "<dt>Package version</dt><dd>telemetry-mini-service 0.1.0</dd>",
    ):
        assert expected in text
    assert "pw" not in text


def test_a_small_data_set_gets_a_warning_and_a_normal_one_none() -> None:
    assert size_warning(999, 28.0) is not None
    assert size_warning(50_000, 6.5) is not None
    assert "not reliable" in (size_warning(3, 0.3) or "")
    assert size_warning(1_000, 7.0) is None


def _hourly(levels: dict[int, float], days: int = 28, noise: float = 0.04, seed: int = 1) -> pd.Series:
    """Events per hour over `days` days: each hour of the day at its level, growing threefold over the
    period (the comparison must not favour the later days), with noise and one anomalous day."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2026-01-05", periods=days * 24, freq="h", tz="UTC")
    day_number = np.asarray((index.normalize() - index[0].normalize()).days)
    growth = np.linspace(0.5, 1.5, days)[day_number]
    base = np.array([levels.get(h, 100.0) for h in index.hour])
    counts = base * growth * rng.normal(1, noise, len(index))
    counts[index.normalize() == index[0].normalize() + pd.Timedelta(days=10)] *= 3  # an anomalous day
    return pd.Series(counts, index=index)


def test_hours_within_a_few_percent_of_each_other_are_not_told_apart() -> None:
    leaders = tied_with_top(hour_samples(_hourly({19: 1000, 20: 1024, 21: 1010, 22: 1000, 3: 200})))
    assert leaders.measurable
    assert not leaders.single
    assert set(leaders.labels) == {19, 20, 21, 22}
    assert leaders.spread == pytest.approx(0.024, abs=0.012)
    assert hours_text(leaders.labels) == "19:00–22:00"


def test_a_clear_peak_is_named() -> None:
    leaders = tied_with_top(hour_samples(_hourly({19: 1000, 20: 1300, 21: 1000, 3: 200})))
    assert leaders.single
    assert leaders.labels == (20,)


def test_a_difference_within_the_noise_is_not_a_peak() -> None:
    # 12 % apart, but each day's value swings by a third: two weeks cannot tell them apart.
    leaders = tied_with_top(hour_samples(_hourly({19: 1000, 20: 1120}, days=14, noise=0.35)))
    assert leaders.measurable
    assert set(leaders.labels) == {19, 20}


def test_too_few_repetitions_cannot_name_a_peak() -> None:
    leaders = tied_with_top(hour_samples(_hourly({19: 1000, 20: 1500}, days=2)))
    assert not leaders.measurable
    assert not leaders.single


def test_weeks_the_data_do_not_fully_cover_are_partial() -> None:
    weeks = pd.date_range("2026-01-05", periods=4, freq="7D", tz="UTC")
    first = pd.Timestamp("2026-01-05T00:10:00Z")
    last = pd.Timestamp("2026-01-28T12:00:00Z")  # a Wednesday: the fourth week has barely begun
    assert period_is_partial(weeks, pd.Timedelta(weeks=1), first, last).tolist() == [False, False, False, True]


def test_a_chart_without_a_title_or_axis_label_is_refused() -> None:
    fig, ax = plt.subplots()
    ax.plot([1, 2], [3, 4])
    ax.set_title("Events per day")
    ax.set_xlabel("date (UTC)")
    with pytest.raises(UnlabelledChart, match="no y-axis label"):
        check_labels(fig)
    ax.set_ylabel("events per day")
    assert check_labels(fig) == "Events per day"
    image = ax.imshow(np.eye(2))
    fig.colorbar(image, ax=ax)
    with pytest.raises(UnlabelledChart, match="colour scale has no label"):
        check_labels(fig)
    plt.close(fig)


@pytest.mark.parametrize("cmap", ["Greens", "viridis", "Blues"])
def test_heatmap_text_is_light_on_dark_cells_and_dark_on_light_ones(cmap: str) -> None:
    fig, ax = plt.subplots()
    image = ax.imshow(np.array([[0.0, 1.0]]), cmap=cmap, vmin=0, vmax=1)
    dark_end = 1.0 if cmap in {"Greens", "Blues"} else 0.0  # viridis is dark at its low end
    assert cell_text_colour(image, dark_end) == "white"
    assert cell_text_colour(image, 1.0 - dark_end) != "white"
    plt.close(fig)


def test_axis_labels_carry_the_unit_a_metadata_key_names() -> None:
    assert value_label("duration_ms") == "duration (milliseconds)"
    assert value_label("amount") == "amount (in each event's own currency)"


def test_durations_are_written_in_the_unit_a_reader_thinks_in() -> None:
    from analysis.presentation import duration

    assert [duration(s) for s in (0.2, 29.7, 250, 3 * 3600 + 360, 106_832)] == [
        "< 1 s",
        "30 s",
        "4.2 min",
        "3.1 h",
        "1.2 days",
    ]
    assert duration(float("nan")) == "–"


def test_a_change_from_the_period_before_is_signed_and_missing_without_one() -> None:
    from analysis.presentation import change

    assert change(1125, 1000) == "+12.5 %"
    assert change(970, 1000) == "-3.0 %"
    assert change(5, float("nan")) == "–"
    assert change(5, 0) == "–"


def test_runs_of_tied_hours_are_written_as_ranges() -> None:
    assert hours_text([0, 1, 2, 8, 15, 16, 17]) == "00:00–02:00, 08:00 and 15:00–17:00"
    assert hours_text([19, 20]) == "19:00 and 20:00"
