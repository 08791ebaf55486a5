"""Hypothesis strategies for valid events: any unicode text, 64-bit integers, finite floats, nested metadata."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

from hypothesis import strategies as st

from app.services.event_limits import INT_MAX, INT_MIN

# No surrogates (no UTF-8 form) and, for names, no control characters (C0, DEL, C1): the service refuses those.
NAME_TEXT = st.characters(exclude_categories=("Cs", "Cc"))
FREE_TEXT = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=INT_MIN, max_value=INT_MAX)
    | st.integers(min_value=-(2**53) - 10, max_value=2**53 + 10)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(FREE_TEXT, max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(FREE_TEXT, max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)
metadata = st.dictionaries(st.text(FREE_TEXT, max_size=12), json_values, max_size=6).filter(lambda m: depth(m) <= 15)

offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
# From 2000 to a day ago: within the accepted window whatever the offset.
moments = st.datetimes(
    min_value=datetime(2000, 1, 2), max_value=datetime.now() - timedelta(days=2), timezones=offsets
)  # fmt: skip
utc_moments = moments.map(lambda m: m.astimezone(UTC))


@st.composite
def event_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """The JSON body of a valid POST /v1/events (always with event_id and timestamp, so it can be compared)."""
    timestamp = draw(moments)
    body: dict[str, Any] = {
        "event_id": str(uuid4()),  # fresh each time: hypothesis replays its draws, a stored id would be a duplicate
        "user_id": draw(st.text(NAME_TEXT, min_size=1, max_size=256)),
        "action": draw(st.text(NAME_TEXT, min_size=1, max_size=128)),
        "source": draw(st.text(NAME_TEXT, min_size=1, max_size=128)),
        "timestamp": timestamp.isoformat(),
        "metadata": draw(metadata),
    }
    if draw(st.booleans()):
        body["sent_at"] = draw(sent_after(timestamp)).isoformat()
    return body


def sent_after(timestamp: datetime) -> st.SearchStrategy[datetime]:
    """A client's sent_at: after the action, by up to an hour (so the skew check has nothing to say)."""
    return st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=1)).map(lambda d: timestamp + d)
