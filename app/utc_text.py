"""The fixed-width UTC text form of a moment ('2026-01-02T03:04:05.000006Z'): SQLite's column format, the
cursor's and the API's. Text in this form sorts as the moments compare, so SQLite orders and ranges on it."""

from __future__ import annotations

from datetime import UTC, datetime

# The last moment formatted: a batch shares one received_at, so it is formatted once.
_last_text: tuple[datetime | None, str] = (None, "")


def to_utc_text(moment: datetime) -> str:
    """Fixed-width ISO-8601 UTC text ('2026-01-02T03:04:05.000006Z'): sorts as it compares."""
    global _last_text
    last = _last_text
    if last[0] is moment:
        return last[1]
    m = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    # Formatted by hand: on the ingest hot path, and strftime("%Y") does not pad years before 1000.
    text = f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}.{m.microsecond:06d}Z"
    _last_text = (moment, text)
    return text


def from_utc_text(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
