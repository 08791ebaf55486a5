"""In-memory EventRepository: the fake for unit tests, and the reference the contract suite checks."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from uuid import UUID

from app.json_codec import dump_json
from app.models import UserActionEvent
from app.repository.port import (
    AddResult,
    AddStatus,
    Cursor,
    Erasure,
    EventFilter,
    EventPage,
    EventQuery,
    EventRow,
    EventStats,
    StatsQuery,
    StorageUnavailable,
    classify_existing,
    iterate_pages,
    user_digest,
)
from app.utc_text import to_utc_text


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
        self._erasures: list[Erasure] = []
        self._suppressed: set[str] = set()
        self._retention_lock = threading.Lock()
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

    def iter_rows(self, f: EventFilter, chunk_rows: int) -> Iterator[list[EventRow]]:
        chunk: list[EventRow] = []
        for e in self.iter_events(EventQuery(f, limit=1000)):
            sent_at = to_utc_text(e.sent_at) if e.sent_at else None
            chunk.append((str(e.event_id), e.user_id, e.action, e.source, to_utc_text(e.timestamp),
                          to_utc_text(e.received_at), sent_at, dump_json(e.metadata)))  # fmt: skip
            if len(chunk) == chunk_rows:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def erase_user(self, user_id: str, *, key_name: str, suppress: bool, at: datetime) -> Erasure:
        self.check_writable()
        with self._lock:
            doomed = [eid for eid, e in self._events.items() if e.user_id == user_id]
            for eid in doomed:
                del self._events[eid]
            erasure = Erasure(at.astimezone(UTC), user_digest(user_id), len(doomed), key_name, suppress)
            self._erasures.append(erasure)
            if suppress:
                self._suppressed.add(erasure.user_id_sha256)
        return erasure

    def erasures(self) -> list[Erasure]:
        with self._lock:
            return list(self._erasures)

    def suppressed_users(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._suppressed)

    def remove_before(self, cutoff: datetime, max_rows: int) -> int:
        self.check_writable()
        with self._lock:
            old = sorted((e for e in self._events.values() if e.timestamp < cutoff), key=_key)[:max_rows]
            for e in old:
                del self._events[e.event_id]
        return len(old)

    def count_before(self, cutoff: datetime) -> int:
        with self._lock:
            return sum(1 for e in self._events.values() if e.timestamp < cutoff)

    def oldest_timestamp(self) -> datetime | None:
        with self._lock:
            return min((e.timestamp for e in self._events.values()), default=None)

    def retention_lock(self) -> AbstractContextManager[bool]:
        return _TryLock(self._retention_lock)

    def close(self) -> None:
        return None


class _TryLock:
    """A non-blocking lock as a context manager: True when taken, like PostgreSQL's pg_try_advisory_lock."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._held = False

    def __enter__(self) -> bool:
        self._held = self._lock.acquire(blocking=False)
        return self._held

    def __exit__(self, *exc: object) -> None:
        if self._held:
            self._lock.release()
