"""Metadata exploration: which keys each action carries, their JSON types, top values and numeric spreads."""

from __future__ import annotations

from typing import Any

import pandas as pd

from analysis.db import Database

QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)


def json_path(key: str) -> str:
    """A JSON path to one top-level key, quoted so keys with dots or spaces work."""
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def key_frequencies(db: Database) -> pd.DataFrame:
    """Per (action, key, JSON type): events holding it, and that as a share of the action's events."""
    frame = db.frame(db.sql.metadata_keys)
    totals = db.frame(db.sql.action_counts).set_index("action")["events"]
    frame["share_of_action"] = frame["events"] / frame["action"].map(totals)
    return frame.sort_values(["action", "events"], ascending=[True, False]).reset_index(drop=True)


def key_presence(db: Database) -> pd.DataFrame:
    """Action x key table of the share of the action's events that carry the key (types merged)."""
    frame = key_frequencies(db)
    return frame.pivot_table(index="action", columns="key", values="share_of_action", aggfunc="sum", fill_value=0.0)


def value_types(db: Database) -> pd.DataFrame:
    """Action/key pairs with the JSON types seen; more than one type (or 'null') is worth a look."""
    frame = key_frequencies(db)
    return (
        frame.groupby(["action", "key"])
        .agg(types=("type", lambda t: ", ".join(sorted(t))), type_count=("type", "nunique"), events=("events", "sum"))
        .reset_index()
    )


def top_values(db: Database, action: str, key: str, top: int = 10) -> pd.DataFrame:
    """Most frequent values of one key for one action, with their share among events holding the key.
    A JSON null shows as None with type 'null'."""
    frame = db.frame(db.sql.top_values, {"action": action, "path": json_path(key), "top": top})
    frame["share"] = frame["events"] / frame["present"]
    return frame.drop(columns="present")


def value_distribution(db: Database, action: str, key: str, top: int = 50) -> pd.Series:
    """Share of each value of a key for an action, indexed by value."""
    frame = top_values(db, action, key, top)
    return pd.Series(frame["share"].to_numpy(), index=frame["value"], name=f"{action}.{key}")


def numeric_summary(db: Database, action: str, key: str, quantiles: tuple[float, ...] = QUANTILES) -> dict[str, Any]:
    """Count, mean, std and quantiles of a numeric key, computed in SQL (one sort for all quantiles)."""
    params = {"action": action, "path": json_path(key)}
    row = db.row(db.sql.numeric_summary, params)
    count = int(row["count"] or 0)
    result: dict[str, Any] = {"count": count}
    if not count:
        return result
    mean = float(row["mean"])
    result.update(
        mean=mean, std=max(float(row["mean_square"]) - mean * mean, 0.0) ** 0.5, min=row["minimum"], max=row["maximum"]
    )
    positions = {q: round(q * (count - 1)) for q in quantiles}
    frame = db.frame(
        db.sql.numeric_quantiles,
        {**params, "positions": pd.Series(sorted(set(positions.values()))).to_json(orient="values")},
    )
    by_position = dict(zip(frame["position"], frame["value"], strict=True))
    for q, position in positions.items():
        result[f"p{round(q * 100)}"] = by_position[position]
    return result


def numeric_histogram(db: Database, action: str, key: str, bins: int = 30) -> pd.DataFrame:
    """Equal-width histogram of a numeric key: left edge, right edge, events."""
    params = {"action": action, "path": json_path(key)}
    row = db.row(db.sql.numeric_summary, params)
    if not row.get("count"):
        return pd.DataFrame(columns=["left", "right", "events"])
    low, high = float(row["minimum"]), float(row["maximum"])
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
