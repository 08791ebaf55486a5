"""Time values as the analyses return them: aware UTC pandas timestamps."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd


def parse_utc(text: str) -> datetime:
    """'2026-01-02T03:04:05.000006Z' -> an aware datetime in UTC."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def utc_index(values: pd.Series) -> pd.DatetimeIndex:
    """The engine's naive UTC timestamps -> an aware UTC DatetimeIndex."""
    return pd.DatetimeIndex(pd.to_datetime(values)).tz_localize("UTC")


def day_index(days: pd.Series) -> pd.DatetimeIndex:
    """'YYYY-MM-DD' texts -> midnight UTC timestamps."""
    return pd.DatetimeIndex(pd.to_datetime(days, format="%Y-%m-%d", utc=True))
