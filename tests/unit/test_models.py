import ast
import sys
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from uuid import uuid4

import pytest

from app.models import InvalidEvent, UserActionEvent
from app.utc_text import from_utc_text, to_utc_text

MODELS = Path(__file__).resolve().parents[2] / "app" / "models.py"


def make(**overrides: object) -> UserActionEvent:
    fields: dict[str, object] = {
        "event_id": uuid4(),
        "user_id": "u1",
        "action": "click",
        "timestamp": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        "source": "web",
        "metadata": {"page": "/home", "nested": {"n": 1}},
    }
    fields.update(overrides)
    return UserActionEvent(**fields)  # type: ignore[arg-type]


def test_domain_module_imports_only_the_standard_library() -> None:
    tree = ast.parse(MODELS.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    outside = {name for name in imported if name not in sys.stdlib_module_names and name != "__future__"}
    assert outside == set(), f"app/models.py imports {outside}"


def test_event_is_immutable() -> None:
    event = make()
    with pytest.raises(FrozenInstanceError):
        event.action = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        event.metadata["page"] = "/changed"  # type: ignore[index]


def test_timestamp_without_timezone_is_refused() -> None:
    with pytest.raises(InvalidEvent, match="timezone"):
        make(timestamp=datetime(2026, 1, 1))


def test_timestamps_are_normalised_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    event = make(timestamp=datetime(2026, 1, 1, 12, 0, tzinfo=plus_two))
    assert event.timestamp == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    assert event.timestamp.tzinfo is UTC


def test_same_fact_ignores_received_at_but_not_metadata() -> None:
    first = make()
    later = UserActionEvent(
        first.event_id, first.user_id, first.action, first.timestamp, first.source, dict(first.metadata)
    )
    assert first.same_fact_as(later)
    changed = make(event_id=first.event_id, metadata={"page": "/other"})
    assert not first.same_fact_as(changed)
    assert first.differing_fields(changed) == ["metadata"]


def test_utc_text_is_fixed_width_and_round_trips() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    text = to_utc_text(moment)
    assert text == "2026-01-02T03:04:05.000000Z"
    assert from_utc_text(text) == moment
