"""Use case: import (backfill) events through the same EventService rules as the API.

The records come numbered (line or row) from a reader; they go to `EventService.record_batch` a batch at a
time, so limits and idempotency by event_id are the API's own: re-running an import stores nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.models import InvalidEvent, UserActionEvent
from app.repository.port import AddResult, AddStatus, EventRepository
from app.services.event_service import EventDraft, EventService


@dataclass(frozen=True, slots=True)
class BadRecord:
    """A line that is not an event: why, in words for the person running the import."""

    message: str


@dataclass(frozen=True, slots=True)
class SkippedRecord:
    """A message that is valid but records no action (Segment identify, PostHog $identify...)."""

    kind: str


Record = EventDraft | BadRecord | SkippedRecord


@dataclass(slots=True)
class ImportSummary:
    accepted: int = 0
    duplicate: int = 0
    conflict: int = 0
    invalid: int = 0
    skipped: int = 0  # valid messages that record no action (identify, alias...)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line, why), the first few
    stopped_at: int | None = None  # --strict: the line that ended the import

    @property
    def lines(self) -> int:
        return self.accepted + self.duplicate + self.conflict + self.invalid + self.skipped

    def counts(self) -> dict[str, int]:
        return {
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "conflict": self.conflict,
            "invalid": self.invalid,
            "skipped": self.skipped,
        }


class RepositoryWriter:
    """EventWriter that commits in the calling thread: a command has no event loop full of requests to share
    a transaction with, so the batch it hands over is the transaction."""

    def __init__(self, repository: EventRepository) -> None:
        self._repository = repository

    async def append(self, events: Sequence[UserActionEvent]) -> list[AddResult]:
        return self._repository.add(events)


class QuietMetrics:
    """The service's metrics port for a one-off command: nothing scrapes it, the summary says it all."""

    def event_recorded(self, action: str, source: str) -> None:
        return None

    def event_rejected(self, reason: str, count: int = 1) -> None:
        return None

    def event_duplicate(self) -> None:
        return None


class QuietLog:
    """No log line per imported event (a million of them): bad lines are reported by the importer."""

    def info(self, event: str, **fields: Any) -> None:
        return None

    def info_each(self, event: str, lines: Iterable[dict[str, Any]]) -> None:
        return None


ProblemSink = Callable[[int, str], None]


async def import_records(
    service: EventService,
    records: Iterable[tuple[int, Record]],
    *,
    batch_size: int = 5000,
    strict: bool = False,
    on_problem: ProblemSink | None = None,
    on_batch: Callable[[int], None] | None = None,
    keep_problems: int = 100,
) -> ImportSummary:
    """Import numbered records. Every bad line (unreadable, invalid, conflicting) goes to on_problem with its
    number. strict: stop at the first one; what came before it is stored, nothing after it (except, for a
    conflict, which only storing reveals, the rest of its batch).
    """
    summary = ImportSummary()
    pending: list[tuple[int, EventDraft]] = []

    def problem(number: int, message: str) -> None:
        if len(summary.problems) < keep_problems:
            summary.problems.append((number, message))
        if on_problem is not None:
            on_problem(number, message)

    async def flush() -> bool:
        """Store the pending drafts; False when strict mode must stop."""
        if not pending:
            return True
        outcomes = await service.record_batch([draft for _, draft in pending])
        stop = False
        for (number, _), outcome in zip(pending, outcomes, strict=True):
            if stop:
                break
            if isinstance(outcome, InvalidEvent):
                summary.invalid += 1
                problem(number, f"{outcome.field or 'event'}: {outcome}")
                stop = strict
            elif not isinstance(outcome, AddResult):
                continue  # only drafts go in, so only results and refusals of the limits come back
            elif outcome.status is AddStatus.ACCEPTED:
                summary.accepted += 1
            elif outcome.status is AddStatus.DUPLICATE:
                summary.duplicate += 1
            else:
                summary.conflict += 1
                fields = ", ".join(outcome.conflicting_fields) or "payload"
                problem(number, f"conflict: event {outcome.event.event_id} is stored with different {fields}")
                stop = strict
            if stop:
                summary.stopped_at = number
        if on_batch is not None:
            on_batch(len(pending))
        pending.clear()
        return not stop

    for number, record in records:
        if isinstance(record, EventDraft) and strict:
            # Checked before batching, so that nothing after the first invalid line is stored.
            try:
                service.to_event(record, service.now())
            except InvalidEvent as exc:
                record = BadRecord(f"{exc.field or 'event'}: {exc}")
        if isinstance(record, EventDraft):
            pending.append((number, record))
            if len(pending) >= batch_size and not await flush():
                return summary
        elif isinstance(record, SkippedRecord):
            summary.skipped += 1
        else:
            summary.invalid += 1
            problem(number, record.message)
            if strict:
                await flush()
                summary.stopped_at = number
                return summary
    await flush()
    return summary
