"""Hand-written fakes of our own ports, for unit tests (no mocks of our code)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from app.models import UserActionEvent
from app.repository.port import AddResult, EventRepository


class ImmediateWriter:
    """EventWriter that commits straight into a repository, recording each append."""

    def __init__(self, repository: EventRepository) -> None:
        self.repository = repository
        self.appends: list[int] = []

    async def append(self, events: Sequence[UserActionEvent]) -> list[AddResult]:
        self.appends.append(len(events))
        return self.repository.add(events)


class RecordingMetrics:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str]] = []
        self.rejected: dict[str, int] = {}
        self.duplicates = 0
        self.depths: list[int] = []
        self.full = 0
        self.commits: list[int] = []

    def event_recorded(self, action: str, source: str) -> None:
        self.recorded.append((action, source))

    def event_rejected(self, reason: str, count: int = 1) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + count

    def event_duplicate(self) -> None:
        self.duplicates += 1

    def queue_depth(self, depth: int, capacity: int) -> None:
        self.depths.append(depth)

    def queue_full(self) -> None:
        self.full += 1

    def committed(self, batch_size: int, duration_s: float) -> None:
        self.commits.append(batch_size)


class ListLog:
    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.lines.append({"event": event, **fields})

    def info_each(self, event: str, lines: Iterable[dict[str, Any]]) -> None:
        for fields in lines:
            self.info(event, **fields)
