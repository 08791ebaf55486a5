"""Metadata exploration: which keys each action carries, their JSON types, top values and numeric spreads.

Parsing JSON is what these queries cost, so they read a uniform sample: every k-th event in insertion order,
at most `sample` events (all of them below that). Shares and distributions from 100k events are as good as
from all of them; counts are of the sample, which the frames say in `attrs["sampled_events"]`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from analysis.db import Database

QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)
SAMPLE = 100_000


def json_path(key: str) -> str:
    """A JSON path to one top-level key, quoted so keys with dots or spaces work."""
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sample_params(db: Database, sample: int = SAMPLE) -> dict[str, int]:
    """first/last/stride of the sample: every stride-th seq, so that at most `sample` events are read."""
    bounds = db.row(db.sql.sample_bounds)
    first, last = int(bounds.get("first") or 0), int(bounds.get("last") or 0)
    stride = max(1, math.ceil((last - first + 1) / max(sample, 1)))
    return {"first": first, "last": last, "stride": stride}


def value_counts(db: Database, sample: int = SAMPLE) -> pd.DataFrame:
    """Every (action, key, JSON type, value) in the sample with its count: one pass that the key, type,
    top-value and numeric views below all derive from. Rows are bounded by the sample, not the table."""
    window = sample_params(db, sample)
    frame = db.frame(db.sql.metadata_values, window)
    totals = db.frame(db.sql.sample_actions, window).set_index("action")["events"]
    frame.attrs.update(
        sampled_events=int(totals.sum()),
        stride=window["stride"],
        action_events={str(k): int(v) for k, v in totals.items()},
    )
    return frame


def key_frequencies(counts: pd.DataFrame) -> pd.DataFrame:
    """Per (action, key, JSON type): sampled events holding it, distinct scalar values, and the share of the
    action's sampled events that hold it. `counts` comes from value_counts."""
    frame = counts.groupby(["action", "key", "type"], as_index=False).agg(
        events=("events", "sum"), distinct_values=("value", "count")
    )
    frame["share_of_action"] = frame["events"] / frame["action"].map(counts.attrs["action_events"])
    frame = frame.sort_values(["action", "events"], ascending=[True, False]).reset_index(drop=True)
    frame.attrs.update(counts.attrs)
    return frame


def key_presence(frequencies: pd.DataFrame) -> pd.DataFrame:
    """Action x key table of the share of the action's events that carry the key (types merged)."""
    return frequencies.pivot_table(
        index="action", columns="key", values="share_of_action", aggfunc="sum", fill_value=0.0
    )


def value_types(frequencies: pd.DataFrame) -> pd.DataFrame:
    """Action/key pairs with the JSON types seen; more than one type (or 'null') is worth a look."""
    return (
        frequencies.groupby(["action", "key"])
        .agg(types=("type", lambda t: ", ".join(sorted(t))), type_count=("type", "nunique"), events=("events", "sum"))
        .reset_index()
    )


def top_values_in(counts: pd.DataFrame, action: str, key: str, top: int = 10) -> pd.DataFrame:
    """top_values from a value_counts frame: no query."""
    rows = counts[(counts["action"] == action) & (counts["key"] == key)]
    frame = rows.sort_values("events", ascending=False, kind="stable").head(top)[["value", "type", "events"]]
    frame = frame.reset_index(drop=True)
    frame["share"] = frame["events"] / rows["events"].sum()
    return frame


def numeric_values_in(counts: pd.DataFrame, action: str, key: str) -> pd.Series:
    """Numeric values of a key (index) with their counts, sorted by value."""
    rows = counts[(counts["action"] == action) & (counts["key"] == key) & counts["type"].isin(["integer", "real"])]
    return pd.Series(rows["events"].to_numpy(), index=rows["value"].astype(float).to_numpy()).sort_index()


def numeric_summary_in(
    counts: pd.DataFrame, action: str, key: str, quantiles: tuple[float, ...] = QUANTILES
) -> dict[str, Any]:
    """numeric_summary from a value_counts frame: the same figures, weighted by each value's count."""
    weights = numeric_values_in(counts, action, key)
    count = int(weights.sum())
    result: dict[str, Any] = {"count": count}
    if not count:
        return result
    values = weights.index.to_numpy()
    mean = float((values * weights.to_numpy()).sum() / count)
    variance = float((weights.to_numpy() * (values - mean) ** 2).sum() / count)
    whole = bool(np.all(values == np.round(values)))
    number = int if whole else float  # integers stay integers, as in the JSON
    result.update(mean=mean, std=variance**0.5, min=number(values[0]), max=number(values[-1]))
    cumulative = weights.cumsum().to_numpy()
    for q in quantiles:
        position = round(q * (count - 1))  # the same rank numeric_summary reads in SQL
        result[f"p{round(q * 100)}"] = number(values[int(np.searchsorted(cumulative, position, side="right"))])
    return result


def numeric_histogram_in(counts: pd.DataFrame, action: str, key: str, bins: int = 30) -> pd.DataFrame:
    """numeric_histogram from a value_counts frame."""
    weights = numeric_values_in(counts, action, key)
    if weights.empty:
        return pd.DataFrame(columns=["left", "right", "events"])
    events, edges = np.histogram(weights.index.to_numpy(), bins=bins, weights=weights.to_numpy())
    return pd.DataFrame({"left": edges[:-1], "right": edges[1:], "events": events.astype(int)})


def top_values(db: Database, action: str, key: str, top: int = 10, sample: int = SAMPLE) -> pd.DataFrame:
    """Most frequent values of one key for one action, with their share among events holding the key.
    A JSON null shows as None with type 'null'."""
    params = {**sample_params(db, sample), "action": action, "path": json_path(key), "top": top}
    frame = db.frame(db.sql.top_values, params)
    frame["share"] = frame["events"] / frame["present"]
    return frame.drop(columns="present")


def value_distribution(db: Database, action: str, key: str, top: int = 50, sample: int = SAMPLE) -> pd.Series:
    """Share of each value of a key for an action, indexed by value."""
    frame = top_values(db, action, key, top, sample)
    return pd.Series(frame["share"].to_numpy(), index=frame["value"], name=f"{action}.{key}")


def numeric_summary(
    db: Database, action: str, key: str, quantiles: tuple[float, ...] = QUANTILES, sample: int = SAMPLE
) -> dict[str, Any]:
    """Count, mean, std, min, max and quantiles of a numeric key, computed in SQL (one sort for all
    quantiles)."""
    params = {**sample_params(db, sample), "action": action, "path": json_path(key)}
    row = db.row(db.sql.numeric_summary, params)
    count = int(row["count"] or 0)
    result: dict[str, Any] = {"count": count}
    if not count:
        return result
    mean = float(row["mean"])
    result.update(
        mean=mean,
        std=max(float(row["mean_square"]) - mean * mean, 0.0) ** 0.5,
        min=row["minimum"],
        max=row["maximum"],
    )
    positions = {q: round(q * (count - 1)) for q in quantiles}
    wanted = pd.Series(sorted(set(positions.values()))).to_json(orient="values")
    frame = db.frame(db.sql.numeric_quantiles, {**params, "positions": wanted})
    by_position = dict(zip(frame["position"], frame["value"], strict=True))
    for q, position in positions.items():
        result[f"p{round(q * 100)}"] = by_position[position]
    return result


def numeric_histogram(
    db: Database,
    action: str,
    key: str,
    bins: int = 30,
    sample: int = SAMPLE,
    summary: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Equal-width histogram of a numeric key: left edge, right edge, events. Pass the key's
    numeric_summary to save a query."""
    params = {**sample_params(db, sample), "action": action, "path": json_path(key)}
    if summary is None:
        row = db.row(db.sql.numeric_summary, params)
        summary = {"count": row["count"], "min": row["minimum"], "max": row["maximum"]}
    if not summary.get("count"):
        return pd.DataFrame(columns=["left", "right", "events"])
    low, high = float(summary["min"]), float(summary["max"])
    width = (high - low) / bins or 1.0
    frame = db.frame(db.sql.numeric_histogram, {**params, "low": low, "width": width, "bins": bins})
    counts = frame.set_index("bin")["events"].reindex(range(bins), fill_value=0)
    return pd.DataFrame(
        {
            "left": [low + i * width for i in range(bins)],
            "right": [low + (i + 1) * width for i in range(bins)],
            "events": counts.to_numpy(),
        }
    )


def categorical_keys(frequencies: pd.DataFrame, max_distinct: int = 20, limit: int = 4) -> pd.DataFrame:
    """(action, key) pairs worth a value breakdown: scalar keys with few distinct values, most used first,
    one action per key name (so 'device', present everywhere, shows once)."""
    scalar = frequencies[frequencies["type"].isin(["text", "integer", "true", "false"])]
    few = scalar[(scalar["distinct_values"] > 1) & (scalar["distinct_values"] <= max_distinct)]
    ranked = few.sort_values("events", ascending=False).drop_duplicates("key")
    return ranked.head(limit)[["action", "key", "events", "distinct_values"]].reset_index(drop=True)


def numeric_keys(frequencies: pd.DataFrame, min_distinct: int = 20, limit: int = 3) -> pd.DataFrame:
    """(action, key) pairs holding many distinct numbers (amounts, durations...), most used first."""
    numeric = frequencies[frequencies["type"].isin(["integer", "real"])]
    grouped = numeric.groupby(["action", "key"], as_index=False).agg(
        events=("events", "sum"), distinct_values=("distinct_values", "sum")
    )
    many = grouped[grouped["distinct_values"] >= min_distinct]
    return many.sort_values("events", ascending=False).head(limit).reset_index(drop=True)
