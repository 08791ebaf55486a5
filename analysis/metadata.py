"""Metadata exploration: which keys each action carries, their JSON types, top values and numeric spreads.

Parsing JSON is what these questions cost, so they read a sample taken per action: every action keeps
all of its events up to `cap` (so a rare action's numbers are exact), a busier one a uniform share of
them, about `cap` events (chosen by a hash of user and time, the same rows on every backend). Counts are
of the sample; the frames say how many events each action had and how many were read
(`attrs["action_events"]`, `attrs["sampled_events"]`).

Numbers in different units never mix: `numeric_summary_by_unit` splits a key by the action's currency (or
unit) key, and every function takes a Filter, so `Filter(properties={"currency": "EUR"})` keeps one.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd

from analysis.db import Database
from analysis.filters import Filter, filter_sql
from analysis.properties import UNIT_KEYS, json_path, metadata_table

QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)
SAMPLE = 10_000  # events per action read at most (about); below it, every event of the action

__all__ = ["QUANTILES", "SAMPLE", "UNIT_KEYS", "json_path"]

# SQLite's JSON type names, which the frames have always used.
_TYPE = """CASE json_type({v}) WHEN 'VARCHAR' THEN 'text' WHEN 'BIGINT' THEN 'integer' WHEN 'UBIGINT'
    THEN 'integer' WHEN 'DOUBLE' THEN 'real' WHEN 'BOOLEAN' THEN json_extract_string({v}, '$')
    WHEN 'NULL' THEN 'null' WHEN 'OBJECT' THEN 'object' WHEN 'ARRAY' THEN 'array' END"""
_SCALAR = "CASE WHEN json_type({v}) IN ('NULL', 'OBJECT', 'ARRAY') THEN NULL ELSE json_extract_string({v}, '$') END"


def sample_table(db: Database, sample: int = SAMPLE, where: Filter | None = None) -> str:
    """The engine table (seq, action, metadata) of the per-action sample, built on first use."""
    condition, params = filter_sql(db, where)
    name = "sample_" + hashlib.sha256(f"{sample}|{where!r}".encode()).hexdigest()[:16]
    if not db.derived_table(name):
        return name
    # keep an event when hash mod 1e6 falls under the action's share cap / events (1 for a rare action)
    cursor = db.engine().cursor()
    try:
        cursor.execute(
            f"""CREATE TABLE {name}_picked AS
                WITH counts AS (SELECT action, COUNT(*) AS n FROM events e WHERE {condition} GROUP BY action)
                SELECT e.seq, e.action, c.n FROM events e JOIN counts c USING (action)
                WHERE {condition} AND (c.n <= ? OR hash(e.user_id, e.ts) % 1000000 < 1000000.0 * ? / c.n)""",
            [*params, *params, sample, sample],
        )
        seqs = cursor.execute(f"SELECT seq FROM {name}_picked").fetchnumpy()["seq"]
        metadata_table(db, (int(seq) for seq in seqs), f"{name}_metadata")
        cursor.execute(
            f"""CREATE TABLE {name} AS SELECT p.seq, p.action, p.n, m.metadata
                FROM {name}_picked p JOIN {name}_metadata m USING (seq)"""
        )
        cursor.execute(f"DROP TABLE {name}_picked")
        cursor.execute(f"DROP TABLE {name}_metadata")
    finally:
        cursor.close()
    return name


def _sample_attrs(db: Database, table: str) -> dict[str, Any]:
    frame = db.frame(f"SELECT action, any_value(n) AS n, COUNT(*) AS read FROM {table} GROUP BY action ORDER BY action")
    return {
        "sampled_events": int(frame["read"].sum()),
        "action_events": {str(a): int(n) for a, n in zip(frame["action"], frame["n"], strict=True)},
        "action_sampled": {str(a): int(n) for a, n in zip(frame["action"], frame["read"], strict=True)},
    }


def value_counts(db: Database, sample: int = SAMPLE, where: Filter | None = None) -> pd.DataFrame:
    """Every (action, key, JSON type, value) in the sample with its count: one pass that the key, type,
    top-value and numeric views below all derive from. value is the scalar as text (None for null,
    objects and arrays)."""
    table = sample_table(db, sample, where)
    # Keys by json_keys and values by a JSON pointer, counted per distinct value before typing: the same
    # rows as json_each (metadata is always an object, the domain refuses anything else) at 40 % of its
    # cost (docs/benchmarks.md).
    pointer = "'/' || replace(replace(key, '~', '~0'), '/', '~1')"
    frame = db.frame(
        f"""SELECT action, key, {_TYPE.format(v="v")} AS type, {_SCALAR.format(v="v")} AS value,
                   SUM(n)::BIGINT AS events
            FROM (SELECT action, key, json_extract(metadata, {pointer}) AS v, COUNT(*) AS n
                  FROM (SELECT action, metadata, unnest(json_keys(metadata)) AS key FROM {table}) GROUP BY ALL)
            GROUP BY ALL ORDER BY action, key, type, value"""
    )
    frame.attrs.update(_sample_attrs(db, table))
    return frame


def key_frequencies(counts: pd.DataFrame) -> pd.DataFrame:
    """Per (action, key, JSON type): sampled events holding it, distinct scalar values, and the share of the
    action's sampled events that hold it. `counts` comes from value_counts."""
    frame = counts.groupby(["action", "key", "type"], as_index=False).agg(
        events=("events", "sum"), distinct_values=("value", "count")
    )
    frame["share_of_action"] = frame["events"] / frame["action"].map(counts.attrs["action_sampled"])
    frame = frame.sort_values(["action", "events", "key", "type"], ascending=[True, False, True, True])
    frame = frame.reset_index(drop=True)
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
    ordered = rows.sort_values(["events", "value"], ascending=[False, True], kind="stable", na_position="first")
    frame = ordered.head(top)[["value", "type", "events"]].reset_index(drop=True)
    frame["share"] = frame["events"] / rows["events"].sum()
    return frame


def numeric_values_in(counts: pd.DataFrame, action: str, key: str) -> pd.Series:
    """Numeric values of a key (index) with their counts, sorted by value."""
    rows = counts[(counts["action"] == action) & (counts["key"] == key) & counts["type"].isin(["integer", "real"])]
    series = pd.Series(rows["events"].to_numpy(), index=rows["value"].astype(float).to_numpy())
    return series.groupby(level=0).sum().sort_index()


def _summary(values: np.ndarray, weights: np.ndarray, quantiles: tuple[float, ...], whole: bool) -> dict[str, Any]:
    count = int(weights.sum())
    result: dict[str, Any] = {"count": count}
    if not count:
        return result
    mean = float((values * weights).sum() / count)
    variance = float((weights * (values - mean) ** 2).sum() / count)
    number: type[int] | type[float] = int if whole else float  # integers stay integers, as in the JSON
    result.update(mean=mean, std=variance**0.5, min=number(values[0]), max=number(values[-1]))
    cumulative = weights.cumsum()
    for q in quantiles:
        position = round(q * (count - 1))
        result[f"p{round(q * 100)}"] = number(values[int(np.searchsorted(cumulative, position, side="right"))])
    return result


def numeric_summary_in(
    counts: pd.DataFrame, action: str, key: str, quantiles: tuple[float, ...] = QUANTILES
) -> dict[str, Any]:
    """numeric_summary from a value_counts frame: the same figures, weighted by each value's count."""
    weights = numeric_values_in(counts, action, key)
    rows = counts[(counts["action"] == action) & (counts["key"] == key)]
    whole = bool((rows["type"] == "integer").any() and not (rows["type"] == "real").any())
    return _summary(weights.index.to_numpy(), weights.to_numpy(), quantiles, whole)


def numeric_histogram_in(counts: pd.DataFrame, action: str, key: str, bins: int = 30) -> pd.DataFrame:
    """numeric_histogram from a value_counts frame."""
    weights = numeric_values_in(counts, action, key)
    return _histogram(weights, bins)


def _histogram(weights: pd.Series, bins: int) -> pd.DataFrame:
    if weights.empty:
        return pd.DataFrame(
            {"left": pd.Series(dtype=float), "right": pd.Series(dtype=float), "events": pd.Series(dtype=int)}
        )
    low, high = float(weights.index.min()), float(weights.index.max())
    width = (high - low) / bins or 1.0
    index = np.minimum(((weights.index.to_numpy() - low) / width).astype(int), bins - 1)
    events = np.bincount(index, weights=weights.to_numpy(), minlength=bins).astype(int)
    return pd.DataFrame(
        {
            "left": [low + i * width for i in range(bins)],
            "right": [low + (i + 1) * width for i in range(bins)],
            "events": events,
        }
    )


def _key_values(
    db: Database, action: str, key: str, sample: int, where: Filter | None, unit_key: str | None = None
) -> pd.DataFrame:
    """value, type (and unit) of one key in the sampled events of one action that hold it."""
    table = sample_table(db, sample, where)
    inner_unit = ", coalesce(json_extract_string(metadata, ?), '') AS unit" if unit_key else ""
    outer_unit = ", unit" if unit_key else ""
    params: list[Any] = [json_path(key), *([json_path(unit_key)] if unit_key else []), action]
    return db.frame(
        f"""SELECT {_SCALAR.format(v="v")} AS value, {_TYPE.format(v="v")} AS type {outer_unit}
            FROM (SELECT json_extract(metadata, ?) AS v {inner_unit} FROM {table} WHERE action = ?)
            WHERE v IS NOT NULL""",
        params,
    )


def top_values(
    db: Database, action: str, key: str, top: int = 10, sample: int = SAMPLE, where: Filter | None = None
) -> pd.DataFrame:
    """Most frequent values of one key for one action, with their share among events holding the key.
    A JSON null shows as None with type 'null'."""
    values = _key_values(db, action, key, sample, where)
    counts = values.groupby(["value", "type"], dropna=False).size().rename("events").reset_index()
    counts = counts.sort_values(["events", "value"], ascending=[False, True], na_position="first", kind="stable")
    frame = counts.head(top).reset_index(drop=True)
    frame["share"] = frame["events"] / len(values) if len(values) else 0.0
    return frame


def value_distribution(
    db: Database, action: str, key: str, top: int = 50, sample: int = SAMPLE, where: Filter | None = None
) -> pd.Series:
    """Share of each value of a key for an action, indexed by value."""
    frame = top_values(db, action, key, top, sample, where)
    return pd.Series(frame["share"].to_numpy(), index=frame["value"], name=f"{action}.{key}")


def _numeric(values: pd.DataFrame) -> tuple[pd.Series, bool]:
    numbers = values[values["type"].isin(["integer", "real"])]
    weights = numbers["value"].astype(float).value_counts().sort_index()
    whole = bool(len(numbers)) and bool((numbers["type"] == "integer").all())
    return weights, whole


def numeric_summary(
    db: Database,
    action: str,
    key: str,
    quantiles: tuple[float, ...] = QUANTILES,
    sample: int = SAMPLE,
    where: Filter | None = None,
) -> dict[str, Any]:
    """Count, mean, std, min, max and quantiles (the value at rank round(q x (count - 1))) of a numeric key.
    Mixed units mix here: see numeric_summary_by_unit."""
    weights, whole = _numeric(_key_values(db, action, key, sample, where))
    return _summary(weights.index.to_numpy(), weights.to_numpy(), quantiles, whole)


def unit_key(db: Database, action: str, sample: int = SAMPLE, where: Filter | None = None) -> str | None:
    """The action's key naming the unit of its numbers (currency, unit), if its events carry one."""
    table = sample_table(db, sample, where)
    for key in UNIT_KEYS:
        found = db.row(
            f"SELECT COUNT(*) AS n FROM {table} WHERE action = ? AND json_exists(metadata, ?)", [action, json_path(key)]
        )
        if found.get("n"):
            return key
    return None


def numeric_summary_by_unit(
    db: Database,
    action: str,
    key: str,
    quantiles: tuple[float, ...] = QUANTILES,
    sample: int = SAMPLE,
    where: Filter | None = None,
) -> pd.DataFrame:
    """numeric_summary per unit: one row per value of the action's currency/unit key (index `unit`; '' for
    events without one), so amounts in EUR and USD are never averaged together."""
    unit = unit_key(db, action, sample, where)
    values = _key_values(db, action, key, sample, where, unit)
    if unit is None:
        values["unit"] = ""
    rows = {}
    for name, group in values.groupby("unit", sort=True):
        weights, whole = _numeric(group)
        rows[str(name)] = _summary(weights.index.to_numpy(), weights.to_numpy(), quantiles, whole)
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = unit or "unit"
    return frame


def numeric_histogram(
    db: Database,
    action: str,
    key: str,
    bins: int = 30,
    sample: int = SAMPLE,
    summary: dict[str, Any] | None = None,
    where: Filter | None = None,
) -> pd.DataFrame:
    """Equal-width histogram of a numeric key: left edge, right edge, events. (summary is accepted for
    older callers and no longer needed.)"""
    del summary
    weights, _ = _numeric(_key_values(db, action, key, sample, where))
    return _histogram(weights, bins)


def categorical_keys(frequencies: pd.DataFrame, max_distinct: int = 20, limit: int = 4) -> pd.DataFrame:
    """(action, key) pairs worth a value breakdown: scalar keys with few distinct values, most used first,
    one action per key name (so 'device', present everywhere, shows once)."""
    scalar = frequencies[frequencies["type"].isin(["text", "integer", "true", "false"])]
    few = scalar[(scalar["distinct_values"] > 1) & (scalar["distinct_values"] <= max_distinct)]
    ranked = few.sort_values(["events", "action", "key"], ascending=[False, True, True]).drop_duplicates("key")
    return ranked.head(limit)[["action", "key", "events", "distinct_values"]].reset_index(drop=True)


def numeric_keys(frequencies: pd.DataFrame, min_distinct: int = 20, limit: int = 3) -> pd.DataFrame:
    """(action, key) pairs holding many distinct numbers (amounts, durations...), most used first."""
    numeric = frequencies[frequencies["type"].isin(["integer", "real"])]
    grouped = numeric.groupby(["action", "key"], as_index=False).agg(
        events=("events", "sum"), distinct_values=("distinct_values", "sum")
    )
    many = grouped[grouped["distinct_values"] >= min_distinct]
    return (
        many.sort_values(["events", "action", "key"], ascending=[False, True, True]).head(limit).reset_index(drop=True)
    )
