"""Whether the top of a ranking stands out from the noise, so that the report names a "peak hour" or a
"busiest weekday" only when the data single one out, and otherwise says which ones are too close to call."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.presentation import and_list

# Two leaders closer than this share of the top value are not told apart, however many events there are:
# a 2 % difference between two evening hours is not a finding a reader should act on.
MATERIAL_DIFFERENCE = 0.05


@dataclass(frozen=True, slots=True)
class Leaders:
    """The labels whose mean cannot be told apart from the top one, and how far apart they are."""

    labels: tuple[Any, ...]
    spread: float  # (top mean - lowest tied mean) / top mean
    measurable: bool  # False when there were too few repetitions to estimate the noise

    @property
    def single(self) -> bool:
        return self.measurable and len(self.labels) == 1


def tied_with_top(samples: pd.DataFrame, z: float = 2.0, material: float = MATERIAL_DIFFERENCE) -> Leaders:
    """Which columns cannot be told apart from the column with the highest median.

    Rows are repetitions (one per day for hours of the day, one per week for weekdays), each already made
    relative to its row (a share of the day, a ratio to the week's level), so growth over the period
    cancels out. The noise is the spread of every value around its column's median, relative to that
    median and pooled over the columns in contention (at least half the top's median): 1.4826 x the
    median absolute deviation, a standard deviation that an anomalous day cannot inflate. A column is
    tied with the top when its median is within `material` of the top's, or within `z` standard errors
    of the difference of the two medians. With fewer than 3 rows the noise cannot be measured.
    """
    frame = samples.dropna(axis=1, how="all")
    if frame.empty:
        return Leaders((), 0.0, False)
    medians = frame.median()
    centres: dict[Any, float] = {column: float(medians[column]) for column in frame.columns}
    top = max(centres, key=lambda column: centres[column])
    if len(frame.dropna(how="all")) < 3 or centres[top] <= 0:
        return Leaders((top,), 0.0, False)
    contenders = [column for column in frame.columns if centres[column] >= 0.5 * centres[top]]
    relative = np.concatenate([(frame[c].dropna().to_numpy(dtype=float) / centres[c] - 1) for c in contenders])
    sigma = 1.4826 * float(np.median(np.abs(relative - np.median(relative))))
    counts = {column: max(int(frame[column].count()), 1) for column in frame.columns}

    def error(column: Any) -> float:  # the standard error of a median, relative to it
        return 1.25 * sigma / math.sqrt(counts[column])

    tied = [
        column
        for column in sorted(centres, key=lambda c: centres[c], reverse=True)
        if (gap := 1 - centres[column] / centres[top]) <= material or gap <= z * math.hypot(error(top), error(column))
    ]
    return Leaders(tuple(tied), 1 - min(centres[c] for c in tied) / centres[top], True)


def hour_samples(hourly: pd.Series) -> pd.DataFrame:
    """Rows: days; columns: hours of the day (UTC); cells: that hour's share of the day's events, so a
    busier day weighs no more than a quiet one."""
    index = pd.DatetimeIndex(hourly.index)
    frame = pd.DataFrame({"day": index.normalize(), "hour": index.hour, "events": hourly.to_numpy()})
    table = frame.pivot_table(index="day", columns="hour", values="events", aggfunc="sum")
    totals = table.sum(axis=1)
    return table[totals > 0].div(totals[totals > 0], axis=0)


def weekday_samples(daily: pd.Series, names: Sequence[str]) -> pd.DataFrame:
    """Rows: weeks (Monday); columns: weekdays; cells: the day's volume relative to the centred 7-day mean
    around it, so that growth over the period does not favour the later weekdays."""
    level = daily.rolling(7, center=True, min_periods=7).mean()
    ratio = (daily / level).dropna()
    if ratio.empty:
        return pd.DataFrame(columns=list(names), dtype=float)
    index = pd.DatetimeIndex(ratio.index)
    weekday = np.asarray(index.day_of_week)
    weeks = index.normalize() - pd.to_timedelta(weekday, unit="D")
    frame = pd.DataFrame({"week": weeks, "weekday": [names[int(d)] for d in weekday], "ratio": ratio.to_numpy()})
    return frame.pivot_table(index="week", columns="weekday", values="ratio", aggfunc="mean")


def hours_text(hours: Sequence[int]) -> str:
    """[19, 20, 21, 22] -> '19:00-22:00' (an en dash); runs of three or more hours are written as a range:
    [0, 1, 2, 8, 15, 16, 17] -> '00:00-02:00, 08:00 and 15:00-17:00'."""
    runs: list[list[int]] = []
    for hour in sorted(hours):
        if runs and hour == runs[-1][-1] + 1:
            runs[-1].append(hour)
        else:
            runs.append([hour])
    parts: list[str] = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{run[0]:02d}:00–{run[-1]:02d}:00")
        else:
            parts.extend(f"{h:02d}:00" for h in run)
    return and_list(parts)
