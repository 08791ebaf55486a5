"""In-memory EventRepository: the fake for unit tests, and the reference the contract suite checks."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from uuid import UUID

from app.models import UserActionEvent
from app.repository.port import (
    AddResult,
    AddStatus,
    Cursor,
    EventFilter,
    EventPage,
    EventQuery,
    EventStats,
    StatsQuery,
    StorageUnavailable,
    classify_existing,
    iterate_pages,
)


def _matches(event: UserActionEvent, f: EventFilter) -> bool:
    return (
        (f.user_id is None or event.user_id == f.user_id)
        and (f.action is None or event.action == f.action)
        and (f.source is None or event.source == f.source)
        and (f.since is None or event.timestamp >= f.since)
        and (f.until is None or event.timestamp < f.until)
    )


def _key(event: UserActionEvent) -> tuple[datetime, str]:
    return (event.timestamp, str(event.event_id))


class InMemoryEventRepository:
    def __init__(self) -> None:
        self._events: dict[UUID, UserActionEvent] = {}
        self._lock = threading.Lock()
        self.writable = True

    def add(self, events: Sequence[UserActionEvent]) -> list[AddResult]:
        self.check_writable()
        results: list[AddResult] = []
        with self._lock:
            for event in events:
                stored = self._events.get(event.event_id)
                if stored is None:
                    self._events[event.event_id] = event
                    results.append(AddResult(AddStatus.ACCEPTED, event))
                else:
                    results.append(classify_existing(event, stored))
        return results

    def get(self, event_id: UUID) -> UserActionEvent | None:
        return self._events.get(event_id)

    def query(self, q: EventQuery) -> EventPage:
        with self._lock:
            matching = sorted(
                (e for e in self._events.values() if _matches(e, q.filter)), key=_key, reverse=q.order == "desc"
            )
        if q.after is not None:
            after = (q.after.timestamp, str(q.after.event_id))
            matching = [e for e in matching if (_key(e) < after if q.order == "desc" else _key(e) > after)]
        items = matching[: q.limit]
        more = len(matching) > q.limit
        return EventPage(items, Cursor(items[-1].timestamp, items[-1].event_id) if more and items else None)

    def iter_events(self, q: EventQuery) -> Iterator[UserActionEvent]:
        return iterate_pages(self, q)

    def stats(self, q: StatsQuery) -> EventStats:
        by_action: dict[str, int] = {}
        by_source: dict[str, int] = {}
        by_bucket: dict[datetime, int] = {}
        with self._lock:
            matching = [e for e in self._events.values() if _matches(e, q.filter)]
        for e in matching:
            by_action[e.action] = by_action.get(e.action, 0) + 1
            by_source[e.source] = by_source.get(e.source, 0) + 1
            start = e.timestamp.replace(minute=0, second=0, microsecond=0)
            if q.bucket == "day":
                start = start.replace(hour=0)
            by_bucket[start] = by_bucket.get(start, 0) + 1
        return EventStats(len(matching), by_action, by_source, sorted(by_bucket.items()))

    def check_writable(self) -> None:
        if not self.writable:
            raise StorageUnavailable("in-memory repository set read-only")

    def close(self) -> None:
        return None
