"""Weekly retention cohorts: users grouped by the calendar week of their first event (weeks start Monday,
UTC), and the share of each cohort active again k weeks later."""

from __future__ import annotations

import pandas as pd

from analysis.db import Database
from analysis.timeutil import day_index


def cohort_counts(db: Database) -> pd.DataFrame:
    """Cohort (week start) x weeks since first event: distinct active users. Unobserved cells are NaN."""
    frame = db.frame(db.sql.retention_cohorts)
    if frame.empty:
        return pd.DataFrame()
    frame["cohort"] = day_index(frame["cohort"])
    table = frame.pivot_table(index="cohort", columns="week_offset", values="users", aggfunc="sum")
    last_week = table.index.max()
    for offset in table.columns:
        # A cohort can be measured at offset k only if week cohort + k lies inside the data.
        observed = table.index + pd.Timedelta(weeks=int(offset)) <= last_week
        table[offset] = table[offset].where(~observed, table[offset].fillna(0)).where(observed)
    return table


def retention_matrix(db: Database) -> pd.DataFrame:
    """Share of each cohort active k weeks after its first week (column 0 is 1.0), plus the cohort size."""
    counts = cohort_counts(db)
    if counts.empty:
        return counts
    matrix = counts.div(counts[0], axis=0)
    matrix.insert(0, "users", counts[0].astype(int))
    return matrix


def retention_curve(db: Database) -> pd.Series:
    """Retention k weeks after the first week, over all cohorts that can be observed that far (users
    weighted: sum of retained users / sum of cohort sizes)."""
    counts = cohort_counts(db)
    if counts.empty:
        return pd.Series(dtype=float, name="retention")
    curve = {}
    for offset in counts.columns:
        observed = counts[offset].notna()
        curve[int(offset)] = float(counts.loc[observed, offset].sum() / counts.loc[observed, 0].sum())
    return pd.Series(curve, name="retention").rename_axis("week_offset")
