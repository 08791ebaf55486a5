"""Temporal analysis: hourly and daily series, the daily and weekly cycles, trend and anomalous days.

Only `hourly_series` reads the store (one GROUP BY over the hour bucket); everything else derives from
that series, which has one value per hour of the time span whatever the number of events.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.db import Database
from analysis.filters import Filter, filter_sql
from analysis.timeutil import utc_index

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _times(series: pd.Series) -> pd.DatetimeIndex:
    """A time series' index, typed as the DatetimeIndex it is."""
    return pd.DatetimeIndex(series.index)


def hourly_series(db: Database, where: Filter | None = None) -> pd.Series:
    """Events per UTC hour, hours without events included as 0."""
    condition, params = filter_sql(db, where)
    frame = db.frame(
        f"SELECT date_trunc('hour', ts) AS hour, COUNT(*) AS events FROM events e WHERE {condition} "
        "GROUP BY hour ORDER BY hour",
        params,
    )
    if frame.empty:
        return pd.Series(dtype="int64", name="events")
    index = utc_index(frame["hour"])
    series = pd.Series(frame["events"].to_numpy(), index=index, name="events")
    full = pd.date_range(index.min(), index.max(), freq="h")
    return series.reindex(full, fill_value=0)


def daily_series(hourly: pd.Series) -> pd.Series:
    """Events per UTC day."""
    return hourly.resample("D").sum().rename("events")


def hour_of_day_profile(hourly: pd.Series) -> pd.Series:
    """Mean events per hour of the day (0-23, UTC), averaged over the days observed."""
    return hourly.groupby(_times(hourly).hour).mean().reindex(range(24), fill_value=0.0).rename("events")


def peak_hours(hourly: pd.Series, top: int = 3) -> list[int]:
    """The busiest hours of the day (UTC), busiest first."""
    return [int(h) for h in hour_of_day_profile(hourly).sort_values(ascending=False).index[:top]]


def hour_weekday_heatmap(hourly: pd.Series) -> pd.DataFrame:
    """Mean events per (weekday, hour of day): rows Mon..Sun, columns 0..23."""
    times = _times(hourly)
    frame = pd.DataFrame({"events": hourly.to_numpy(), "weekday": times.day_of_week, "hour": times.hour})
    table = frame.pivot_table(index="weekday", columns="hour", values="events", aggfunc="mean")
    table = table.reindex(index=range(7), columns=range(24))
    table.index = pd.Index([WEEKDAYS[i] for i in table.index], name="weekday")
    return table


def weekday_profile(daily: pd.Series) -> pd.Series:
    """Relative volume of each weekday (1.0 = an average day).

    Each day is divided by the 7-day centred mean around it (one of each weekday, so growth or decline
    does not leak into the weekly cycle), then the median per weekday is taken across weeks, so that one
    anomalous day does not shift its weekday. With under a week of data every weekday is 1.0.
    """
    level = daily.rolling(7, center=True, min_periods=7).mean()
    ratio = (daily / level).dropna()
    by_weekday = ratio.groupby(_times(ratio).day_of_week).median().reindex(range(7))
    by_weekday = (by_weekday / by_weekday.mean()).fillna(1.0)
    by_weekday.index = pd.Index(list(WEEKDAYS), name="weekday")
    return by_weekday.rename("relative_volume")


def trend(daily: pd.Series) -> dict[str, float]:
    """Least-squares line through daily counts: slope in events/day and that slope relative to the mean,
    per week."""
    if len(daily) < 2:
        return {"slope_per_day": 0.0, "weekly_growth": 0.0}
    slope = float(np.polyfit(np.arange(len(daily)), daily.to_numpy(dtype=float), 1)[0])
    mean = float(daily.mean())
    return {"slope_per_day": slope, "weekly_growth": 7 * slope / mean if mean else 0.0}


def _median_of_others(window: np.ndarray) -> float:
    return float(np.median(np.delete(window, len(window) // 2)))


def daily_baseline(daily: pd.Series, window: int = 7) -> pd.DataFrame:
    """The weekly cycle removed (each day divided by its weekday's relative volume), then the local level:
    the median of the days around each day, itself left out. It follows growth and decline, and an odd
    day moves neither its own level nor (being one of several) its neighbours'. The first and last
    window // 2 days have no level (their window is not full), so they are never flagged."""
    profile = weekday_profile(daily)
    factors = profile.to_numpy()[_times(daily).day_of_week]
    adjusted = pd.Series(daily.to_numpy(dtype=float) / np.where(factors > 0, factors, 1.0), index=daily.index)
    level = adjusted.rolling(window, center=True, min_periods=window).apply(_median_of_others, raw=True)
    return pd.DataFrame({"events": daily, "adjusted": adjusted, "baseline": level})


def daily_anomalies(daily: pd.Series, window: int = 7, threshold: float = 3.5) -> pd.DataFrame:
    """Days far from their local level, with a robust z-score.

    ratio = log(adjusted / baseline) (see daily_baseline); z = (ratio - median ratio) / (1.4826 x median
    absolute deviation of the ratios): a standard score that a few anomalous days cannot inflate.
    |z| >= threshold flags the day.
    """
    frame = daily_baseline(daily, window)
    ratio = pd.Series(np.log((frame["adjusted"] + 1.0) / (frame["baseline"] + 1.0)), index=frame.index)
    centre = ratio.median()
    spread = 1.4826 * (ratio - centre).abs().median()
    frame["z"] = (ratio - centre) / spread if spread > 0 else 0.0
    frame["anomaly"] = frame["z"].abs() >= threshold
    return frame
