"""How the report writes numbers, tables and its own provenance, so every section reads the same way.

A reader should never see `9.597e-01`, `NaN`, a pandas index column or `+00:00`: shares are written as
`96.0 %`, missing values as a dash with their reason in the text, times as `2026-01-05 03:06 UTC`.
Whether a "peak" may be named at all is analysis/peaks.py's judgement.
"""

from __future__ import annotations

import html
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pandas as pd

MISSING = "–"
# Columns with these words in their name hold shares (0..1) and are written as percentages.
SHARE_COLUMN = re.compile(r"share|conversion|retention|rate|stickiness", re.IGNORECASE)
# Below these sizes a weekly cycle, a retention curve or a peak hour cannot be told from chance.
RELIABLE_EVENTS = 1_000
RELIABLE_DAYS = 7.0


def _missing(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def percent(share: Any, digits: int = 1) -> str:
    """0.605 -> '60.5 %'; a missing share -> a dash."""
    if _missing(share):
        return MISSING
    return f"{100 * float(share):.{digits}f} %"


def count(value: Any) -> str:
    """20000 -> '20,000'."""
    return MISSING if _missing(value) else f"{round(float(value)):,}"


def number(value: Any, digits: int = 2) -> str:
    """A measured quantity: thousands separated, a fixed number of decimals, never scientific notation."""
    if _missing(value):
        return MISSING
    value = float(value)
    if value.is_integer():
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def when(moment: Any) -> str:
    """An instant in UTC without an offset suffix: '2026-01-05 03:06 UTC'."""
    if _missing(moment):
        return MISSING
    stamp = pd.Timestamp(moment)
    stamp = stamp.tz_convert("UTC") if stamp.tzinfo else stamp
    return f"{stamp:%Y-%m-%d %H:%M} UTC"


def duration(seconds: Any) -> str:
    """A length of time in the unit a reader thinks in: '45 s', '4.2 min', '3.1 h', '1.2 days'."""
    if _missing(seconds):
        return MISSING
    value = float(seconds)
    if value < 1:
        return "< 1 s"
    for limit, unit, size in ((60, "s", 1), (3600, "min", 60), (86400, "h", 3600)):
        if value < limit:
            return f"{value / size:.0f} {unit}" if unit == "s" else f"{value / size:.1f} {unit}"
    return f"{value / 86400:.1f} days"


def change(current: Any, previous: Any) -> str:
    """The relative change from the period before: '+12.5 %', '-3.0 %'; a dash when there is none."""
    if _missing(current) or _missing(previous) or not float(previous):
        return MISSING
    ratio = float(current) / float(previous) - 1
    return f"{'+' if ratio >= 0 else '-'}{abs(100 * ratio):.1f} %"


def day(moment: Any) -> str:
    """A calendar day: '2026-01-05'."""
    return MISSING if _missing(moment) else f"{pd.Timestamp(moment):%Y-%m-%d}"


def label(name: Any) -> str:
    """A column name as a reader would say it: 'step_conversion' -> 'step conversion'."""
    return str(name).replace("_", " ")


def _cell(value: Any, as_share: bool) -> str:
    if _missing(value):
        return MISSING
    if as_share:
        return percent(value)
    if isinstance(value, pd.Timestamp | datetime):
        stamp = pd.Timestamp(value)
        return day(stamp) if stamp == stamp.normalize() else when(stamp)
    if isinstance(value, date):
        return day(value)
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        return number(value)
    return str(value)


@dataclass(frozen=True, slots=True)
class Table:
    """Display-ready text cells; rendered as a plain HTML table without an index column."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in self.rows)
        caption = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        return f'<table class="report-table">{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'

    def __str__(self) -> str:
        return "\n".join("\t".join(row) for row in (self.columns, *self.rows))


def table(
    data: pd.DataFrame | pd.Series,
    *,
    shares: Iterable[str] = (),
    caption: str = "",
    index_label: str | None = None,
) -> Table:
    """A frame as the report shows it: a meaningful index becomes the first column (a RangeIndex is
    dropped), shares become percentages (named in `shares` or by SHARE_COLUMN), missing values a dash."""
    frame = data.to_frame() if isinstance(data, pd.Series) else data
    if not isinstance(frame.index, pd.RangeIndex) or frame.index.name is not None:
        name = index_label or frame.index.name or ""
        frame = frame.reset_index(names=[name] if frame.index.nlevels == 1 else None)
    share_columns = {str(c) for c in shares}
    columns = [str(c) for c in frame.columns]
    flags = [c in share_columns or bool(SHARE_COLUMN.search(c)) for c in columns]
    rows = tuple(
        tuple(_cell(v, flag) for v, flag in zip(record, flags, strict=True))
        for record in frame.itertuples(index=False, name=None)
    )
    return Table(tuple(label(c) for c in columns), rows, caption)


def public_url(url: str) -> str:
    """The database URL without its password (the user name and host stay: they say which database)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def package_version(root: Path | None = None) -> str:
    """The version in the project's pyproject.toml (the project is run from its checkout, not installed)."""
    pyproject = (root or Path(__file__).resolve().parents[1]) / "pyproject.toml"
    try:
        return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def header_html(
    database_url: str,
    overview: Mapping[str, Any],
    generated_at: datetime,
    version: str,
    simulated_share: float | None = None,
    cache: str | None = None,
) -> str:
    """The report's provenance: which database, how many events over what time, when, by which version,
    how much of it the simulator wrote (events marked simulated: true), if any, and whether the engine's
    copy of the events came from the cache (analysis/cache.py)."""
    first, last = overview.get("first_timestamp"), overview.get("last_timestamp")
    fields = [
        ("Database", public_url(database_url)),
        ("Events", count(overview.get("events", 0))),
        ("Time range", f"{when(first)} to {when(last)}" if first is not None else MISSING),
        ("Generated at", when(generated_at)),
        ("Package version", f"telemetry-mini-service {version}"),
    ]
    if simulated_share:
        fields.append(("Simulated events", f"{percent(simulated_share)} (metadata simulated: true)"))
    if cache:
        fields.append(("Cache", cache))
    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in fields)
    return f'<dl class="report-header">{items}</dl>'


def simulated_share(frequencies: pd.DataFrame) -> float:
    """Share of the sampled events the simulator marked (metadata simulated: true), from key_frequencies."""
    sampled = frequencies.attrs.get("sampled_events", 0) if len(frequencies) else 0
    if not sampled:
        return 0.0
    marked = frequencies[(frequencies["key"] == "simulated") & (frequencies["type"] == "true")]
    return float(marked["events"].sum() / sampled)


def size_warning(events: int, span_days: float) -> str | None:
    """A sentence for the top of the report when the data are too few to conclude anything, else None."""
    if events >= RELIABLE_EVENTS and span_days >= RELIABLE_DAYS:
        return None
    return (
        f"Small data set: {events:,} events over {span_days:.1f} days (fewer than {RELIABLE_EVENTS:,} events "
        f"or under {RELIABLE_DAYS:.0f} days). The sections below still show what is there, but conclusions "
        "(peaks, weekly patterns, conversion, retention) are not reliable at this size."
    )


def and_list(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else ""


def period_is_partial(
    starts: pd.DatetimeIndex, length: pd.Timedelta, first: Any, last: Any, coverage: float = 0.9
) -> np.ndarray:
    """For periods [start, start + length): True where the data cover less than `coverage` of it (the week
    the data begin or end in), so a chart can shade it instead of drawing it as a drop."""
    if first is None or last is None or not len(starts):
        return np.zeros(len(starts), dtype=bool)
    begin, end = pd.Timestamp(first), pd.Timestamp(last)
    covered = [(min(start + length, end) - max(start, begin)) / length for start in pd.DatetimeIndex(starts)]
    return np.asarray([share < coverage for share in covered], dtype=bool)


_UNIT_SUFFIXES = {"_ms": "milliseconds", "_s": "seconds", "_seconds": "seconds", "_bytes": "bytes", "_px": "pixels"}


def value_label(key: str) -> str:
    """An axis label for a metadata key's values, with the unit its name carries ('duration_ms' ->
    'duration (milliseconds)'); a key without one says its values are shown as the client sent them."""
    for suffix, unit in _UNIT_SUFFIXES.items():
        if key.endswith(suffix):
            return f"{key.removesuffix(suffix).replace('_', ' ')} ({unit})"
    if key in {"amount", "price", "revenue"}:
        return f"{key} (in each event's own currency)"
    if key.endswith(("_length", "_count")) or key in {"results", "count"}:
        return f"{key.replace('_', ' ')} (count)"
    return f"{key.replace('_', ' ')} (as sent)"
