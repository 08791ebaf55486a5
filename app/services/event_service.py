"""Use cases: record one event, record a batch, read events, count them.

The service takes its ports as arguments: a writer (commits, then answers), a repository for reads,
metrics and a logger. It knows nothing of HTTP, SQL or prometheus_client.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

from uuid_utils.compat import uuid7

from app.models import DomainError, InvalidEvent, JsonObject, UserActionEvent
from app.repository.port import (
    AddResult,
    AddStatus,
    EventFilter,
    EventPage,
    EventQuery,
    EventRepository,
    EventRow,
    EventStats,
    StatsQuery,
)
from app.services.erasure import Suppressions, UserErased
from app.services.event_limits import EventLimits, check_event
from app.services.rejections import RejectionReason, Rejections
from app.utc_text import to_utc_text


class EventNotFound(DomainError):
    pass


class EventConflict(DomainError):
    """An event with this event_id is stored with another payload."""

    def __init__(self, event_id: UUID, fields: Sequence[str]) -> None:
        self.event_id = event_id
        self.fields = tuple(fields)
        super().__init__(f"event {event_id} is already stored with different {', '.join(self.fields) or 'payload'}")


class TooManyBuckets(DomainError):
    """A stats query would return more time buckets than allowed: narrow the range or use a wider bucket."""


class EventWriter(Protocol):
    async def append(self, events: Sequence[UserActionEvent]) -> list[AddResult]: ...


class EventMetrics(Protocol):
    def event_recorded(self, action: str, source: str) -> None: ...
    def event_rejected(self, reason: str, count: int = 1) -> None: ...
    def event_duplicate(self) -> None: ...


class EventLog(Protocol):
    def info(self, event: str, **fields: Any) -> Any: ...

    def info_each(self, event: str, lines: Iterable[dict[str, Any]]) -> Any:
        """info(event, **fields) for each dict of fields, in order (a batch's lines at once)."""


@dataclass(frozen=True, slots=True)
class EventDraft:
    """What a client reports; the service turns it into a UserActionEvent (id, clocks)."""

    user_id: str
    action: str
    source: str
    metadata: JsonObject
    event_id: UUID | None = None
    timestamp: datetime | None = None
    sent_at: datetime | None = None
    # Set only by an import of events this or another store recorded: their original server time is kept,
    # so export -> import -> export gives the same bytes. Clients never set it (the API has no such field).
    received_at: datetime | None = None
    # Fields the client did not send as such but the mapping derived (PostHog's timestamp from `offset`).
    derived: frozenset[str] = frozenset()

    def unsent_fields(self) -> frozenset[str]:
        """Fields the server fills in or derives: they differ on every retry, so a retry is not compared on them."""
        unsent = set(self.derived)
        if self.timestamp is None:
            unsent.add("timestamp")
        if self.sent_at is None:
            unsent.add("sent_at")
        return frozenset(unsent)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A batch item its caller refused before it became a draft (fails the request schema, too large,
    unmappable): counted under `reason` by record_batch and handed back in its place with `detail`."""

    reason: RejectionReason
    detail: Any = None


Passed = TypeVar("Passed")  # what else record_batch hands back untouched in its place (an SDK acknowledgement)


def _as_retry(result: AddResult, unsent: frozenset[str]) -> AddResult:
    """A conflict only in fields the client did not send is its retry: a DUPLICATE of the copy first stored."""
    if result.status is AddStatus.CONFLICT and unsent.issuperset(result.conflicting_fields):
        return AddResult(AddStatus.DUPLICATE, result.event)
    return result


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> UUID:
    # Time-ordered UUIDv7: new rows land at the right edge of the event_id index.
    return uuid7()


class EventService:
    def __init__(
        self,
        writer: EventWriter,
        repository: EventRepository,
        metrics: EventMetrics,
        log: EventLog,
        *,
        clock: Callable[[], datetime] = _utc_now,
        new_id: Callable[[], UUID] = _new_id,
        limits: EventLimits | None = None,
        rejections: Rejections | None = None,
        suppressions: Suppressions | None = None,
    ) -> None:
        self._writer = writer
        self._repository = repository
        self._metrics = metrics
        self._log = log
        self._clock = clock
        self._new_id = new_id
        self._limits = limits or EventLimits()
        self._rejections = rejections or Rejections(metrics, log)
        self._suppressions = suppressions

    def now(self) -> datetime:
        return self._clock()

    def to_event(self, draft: EventDraft, received_at: datetime) -> UserActionEvent:
        """The event a draft describes, or InvalidEvent when it breaks one of the event limits."""
        event = UserActionEvent(
            event_id=draft.event_id or self._new_id(),
            user_id=draft.user_id,
            action=draft.action,
            source=draft.source,
            timestamp=draft.timestamp or received_at,
            metadata=draft.metadata,
            received_at=draft.received_at or received_at,
            sent_at=draft.sent_at,
        )
        check_event(event, self._limits)
        if self._suppressions is not None and self._suppressions.refuses(event.user_id):
            raise UserErased
        return event

    async def record_event(self, draft: EventDraft) -> AddResult:
        """Store one event. ACCEPTED or DUPLICATE come back; a conflicting payload raises EventConflict,
        an event outside the limits InvalidEvent (counted and logged here).

        Only the fields the client sent are compared with a stored copy (EventDraft.unsent_fields): a retry
        without a timestamp is a DUPLICATE answered with the event as first stored."""
        try:
            event = self.to_event(draft, self._clock())
        except InvalidEvent as exc:
            self._refuse_invalid(exc)
            raise
        (stored,) = await self._writer.append([event])
        result = _as_retry(stored, draft.unsent_fields())
        self._observe(result)
        if result.status is AddStatus.CONFLICT:
            raise EventConflict(event.event_id, result.conflicting_fields)
        return result

    async def record_batch(
        self,
        items: Sequence[EventDraft | Refusal | Passed],
        *,
        resend_may_change_sent_at: bool = False,
        **log_fields: Any,
    ) -> list[AddResult | InvalidEvent | Refusal | Passed]:
        """Store the valid events of a batch together; one outcome per item, in input order.

        Each item is a draft, or whatever the caller already decided for that item (a Refusal, counted
        and logged here by reason, or an SDK acknowledgement), which comes back unchanged in its place.
        A draft's outcome is its AddResult, or the InvalidEvent that kept it out (counted and logged here).
        `log_fields` go on the rejection log lines (e.g. sdk="segment").

        resend_may_change_sent_at: for SDKs that stamp a fresh sent_at on each retry of the same message
        (Segment, PostHog), an event differing from the stored one only in sent_at is a DUPLICATE, not
        a CONFLICT; the first delivery's sent_at stays.
        """
        refusals = Counter(item.reason for item in items if isinstance(item, Refusal))
        for reason, count in refusals.items():
            self._rejections(reason, count, **log_fields)
        received_at = self._clock()
        prepared = [self._prepare(item, received_at) if isinstance(item, EventDraft) else item for item in items]
        events = [event for event in prepared if isinstance(event, UserActionEvent)]
        stored = iter(await self._writer.append(events) if events else [])
        resent = frozenset({"sent_at"}) if resend_may_change_sent_at else frozenset()
        outcomes: list[AddResult | InvalidEvent | Refusal | Passed] = []
        recorded: list[dict[str, Any]] = []
        for item, ready in zip(items, prepared, strict=True):
            if isinstance(ready, UserActionEvent) and isinstance(item, EventDraft):
                result = _as_retry(next(stored), item.unsent_fields() | resent)
                if (line := self._observed(result)) is not None:
                    recorded.append(line)
                outcomes.append(result)
            elif not isinstance(ready, UserActionEvent):
                outcomes.append(ready)
        if recorded:
            self._log.info_each("event_recorded", recorded)
        return outcomes

    def _prepare(self, draft: EventDraft, received_at: datetime) -> UserActionEvent | InvalidEvent:
        try:
            return self.to_event(draft, received_at)
        except InvalidEvent as exc:
            self._refuse_invalid(exc)
            return exc

    def _refuse_invalid(self, exc: InvalidEvent) -> None:
        # RejectionReason() raises for a reason outside the fixed set: a misspelt reason fails loudly.
        self._rejections(RejectionReason(exc.reason), field=exc.field)

    def _observe(self, result: AddResult) -> None:
        if (line := self._observed(result)) is not None:
            self._log.info("event_recorded", **line)

    def _observed(self, result: AddResult) -> dict[str, Any] | None:
        """Count the outcome; for a stored event, the fields of its event_recorded line (written by the caller)."""
        event = result.event
        if result.status is AddStatus.ACCEPTED:
            self._metrics.event_recorded(event.action, event.source)
            # Never the metadata values: they may hold personal data.
            return {
                "event_id": str(event.event_id),
                "user_id": event.user_id,
                "action": event.action,
                "source": event.source,
                "timestamp": to_utc_text(event.timestamp),
            }
        if result.status is AddStatus.DUPLICATE:
            self._metrics.event_duplicate()
        else:
            self._rejections(
                RejectionReason.CONFLICT, event_id=str(event.event_id), fields=list(result.conflicting_fields)
            )
        return None

    def get_event(self, event_id: UUID) -> UserActionEvent:
        event = self._repository.get(event_id)
        if event is None:
            raise EventNotFound(f"no event with event_id {event_id}")
        return event

    def list_events(self, query: EventQuery) -> EventPage:
        return self._repository.query(query)

    def export_events(self, event_filter: EventFilter) -> Iterator[UserActionEvent]:
        """Every matching event in (timestamp, event_id) order, a page at a time: no cap, constant memory."""
        return self._repository.iter_events(EventQuery(event_filter, limit=1000))

    def export_rows(self, event_filter: EventFilter, chunk_rows: int) -> Iterator[list[EventRow]]:
        """The same events as text columns, chunk_rows at a time (columnar exports: no object per event)."""
        return self._repository.iter_rows(event_filter, chunk_rows)

    def stats(self, query: StatsQuery) -> EventStats:
        result = self._repository.stats(query)
        if query.max_buckets is not None and len(result.by_bucket) > query.max_buckets:
            wider = " or use bucket=day" if query.bucket == "hour" else ""
            raise TooManyBuckets(
                f"more than {query.max_buckets} {query.bucket} buckets hold events (the most one stats request"
                f" returns): narrow since/until{wider}"
            )
        return result

    def check_ready(self) -> None:
        self._repository.check_writable()
