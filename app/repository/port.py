"""The storage port: EventRepository, the query and result types it speaks, and the errors it raises.

Every backend (sqlite.py, postgres.py, memory.py) implements this small synchronous interface and
translates its driver's exceptions into the errors below, so the service and the HTTP edge never see
sqlite3 or psycopg. tests/integration runs one contract suite against each backend.
Standard library and the domain only: importing the port loads no driver.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Literal, Protocol
from uuid import UUID

from app.models import DomainError, UserActionEvent


class StorageError(DomainError):
    """The store failed the call for a reason of its own (a driver error that is not an outage)."""


class StorageUnavailable(StorageError):
    """The store cannot take the call now (unreachable, locked, read-only, disk full...): nothing of it was
    stored. Reads as well as writes answer 503 with Retry-After while it lasts."""


class AddStatus(StrEnum):
    ACCEPTED = "accepted"  # stored now
    DUPLICATE = "duplicate"  # same event_id, same fact: already stored, stored once
    CONFLICT = "conflict"  # same event_id, another fact: refused


@dataclass(frozen=True, slots=True)
class AddResult:
    status: AddStatus
    event: UserActionEvent  # the event as stored (for a duplicate or conflict: as first stored)
    conflicting_fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in (timestamp, event_id) order: the last item of a page. The next page continues from it in the
    query's order (after it for asc, before it for desc), so one cursor pages both ways."""

    timestamp: datetime
    event_id: UUID


@dataclass(frozen=True, slots=True)
class EventFilter:
    user_id: str | None = None
    action: str | None = None
    source: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


Order = Literal["asc", "desc"]


@dataclass(frozen=True, slots=True)
class EventQuery:
    filter: EventFilter = field(default_factory=EventFilter)
    limit: int = 100
    after: Cursor | None = None  # exclusive: the page starts past this position, in `order`
    order: Order = "asc"  # asc: oldest first; desc: newest first


@dataclass(frozen=True, slots=True)
class EventPage:
    items: list[UserActionEvent]
    next_cursor: Cursor | None


Bucket = Literal["hour", "day"]


@dataclass(frozen=True, slots=True)
class StatsQuery:
    filter: EventFilter = field(default_factory=EventFilter)
    bucket: Bucket = "hour"
    max_buckets: int | None = None  # a backend may stop after max_buckets + 1: the caller refuses more


@dataclass(frozen=True, slots=True)
class EventStats:
    total: int
    by_action: dict[str, int]
    by_source: dict[str, int]
    by_bucket: list[tuple[datetime, int]]  # bucket start (UTC), count; ordered by time


# A stored event as text columns, the export's fast path: (event_id, user_id, action, source, timestamp,
# received_at, sent_at or None, metadata JSON text), the moments as fixed-width UTC text (to_utc_text).
EventRow = tuple[str, str, str, str, str, str, str | None, str]


@dataclass(frozen=True, slots=True)
class Erasure:
    """One per-user erasure as recorded (append-only): the SHA-256 of the user_id, never the id itself."""

    erased_at: datetime
    user_id_sha256: str
    events_removed: int
    key_name: str  # the API key that asked (or "cli")
    suppressed: bool  # later events of this user are refused


def user_digest(user_id: str) -> str:
    """How an erased user is named in the store: hex SHA-256 of the UTF-8 user_id."""
    return hashlib.sha256(user_id.encode()).hexdigest()


class EventRepository(Protocol):
    """Where events are kept. Thread-safe: one instance serves the writer thread and the readers.

    Every method raises StorageUnavailable or StorageError, never a driver's own exception.
    """

    def add(self, events: Sequence[UserActionEvent]) -> list[AddResult]:
        """Store new events in one transaction; one result per event, in order."""
        ...

    def get(self, event_id: UUID) -> UserActionEvent | None: ...

    def query(self, q: EventQuery) -> EventPage: ...

    def iter_events(self, q: EventQuery) -> Iterator[UserActionEvent]:
        """Every event matching q.filter after q.after, in order, a page at a time (constant memory)."""
        ...

    def stats(self, q: StatsQuery) -> EventStats: ...

    def check_writable(self) -> None:
        """Raise StorageUnavailable when the store cannot take a write now."""
        ...

    def iter_rows(self, f: EventFilter, chunk_rows: int) -> Iterator[list[EventRow]]:
        """Every matching event as text columns, in (timestamp, event_id) order, chunk_rows at a time,
        from one snapshot: for exports that need no domain object per row."""
        ...

    # -- removal: the only ways an event leaves the store ----------------------------------------

    def erase_user(self, user_id: str, *, key_name: str, suppress: bool, at: datetime) -> Erasure:
        """Remove every event of user_id and record the erasure, in one transaction; idempotent (0 the second
        time). suppress: remember the user's digest so that later events can be refused."""
        ...

    def erasures(self) -> list[Erasure]:
        """Every recorded erasure, oldest first."""
        ...

    def suppressed_users(self) -> frozenset[str]:
        """Digests (user_digest) of the users whose later events are refused."""
        ...

    def remove_before(self, cutoff: datetime, max_rows: int) -> int:
        """Remove at most max_rows of the oldest events with timestamp < cutoff, in one short transaction."""
        ...

    def count_before(self, cutoff: datetime) -> int: ...

    def oldest_timestamp(self) -> datetime | None: ...

    def retention_lock(self) -> AbstractContextManager[bool]:
        """Held for a retention pass: True when this process may run it (one replica at a time)."""
        ...

    def close(self) -> None: ...


def classify_existing(new: UserActionEvent, stored: UserActionEvent) -> AddResult:
    """What a second event with a known event_id is: the same fact again, or a conflicting one."""
    if new.same_fact_as(stored):
        return AddResult(AddStatus.DUPLICATE, stored)
    return AddResult(AddStatus.CONFLICT, stored, tuple(new.differing_fields(stored)))


def iterate_pages(repo: EventRepository, q: EventQuery) -> Iterator[UserActionEvent]:
    """iter_events for any backend with keyset pages: memory stays bounded by one page."""
    page_query = replace(q, limit=max(q.limit, 1000))
    while True:
        page = repo.query(page_query)
        yield from page.items
        if page.next_cursor is None:
            return
        page_query = replace(page_query, after=page.next_cursor)
