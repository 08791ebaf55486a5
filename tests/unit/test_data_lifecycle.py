"""Retention passes, erasure and suppression as use cases, over the in-memory repository."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import pytest

from app.models import InvalidEvent
from app.repository.memory import InMemoryEventRepository
from app.repository.port import EventFilter, EventQuery, user_digest
from app.services.erasure import Suppressions, UserErased, erase_user
from app.services.event_service import EventDraft, EventService
from app.services.importing import BadRecord, SkippedRecord, import_records
from app.services.retention import LifecycleTask, Retention
from tests.integration.repository_contract import make_event
from tests.unit.fakes import ImmediateWriter, ListLog, RecordingMetrics

NOW = datetime(2026, 6, 1, tzinfo=UTC)


class RetentionRecorder:
    def __init__(self) -> None:
        self.removed: list[int] = []
        self.finished: list[datetime] = []
        self.ages: list[float | None] = []

    def retention_removed(self, count: int) -> None:
        self.removed.append(count)

    def retention_finished(self, at: datetime) -> None:
        self.finished.append(at)

    def oldest_event_age(self, seconds: float | None) -> None:
        self.ages.append(seconds)


def stocked(days_old: list[float]) -> InMemoryEventRepository:
    repository = InMemoryEventRepository()
    repository.add([make_event(timestamp=NOW - timedelta(days=d)) for d in days_old])
    return repository


def test_a_pass_removes_what_is_older_than_the_period_in_chunks_resting_between() -> None:
    repository = stocked([40, 35, 31, 30.5, 29, 1])
    metrics = RetentionRecorder()
    rests: list[float] = []
    retention = Retention(repository, 30, metrics, chunk_rows=2, clock=lambda: NOW, sleep=rests.append)
    report = retention.run_pass()
    assert (report.removed, report.chunks, report.ran) == (4, 2, True)
    assert metrics.removed == [2, 2]
    assert len(rests) == 2  # after each full chunk: ingestion gets the store between chunks
    assert metrics.finished == [NOW]
    assert metrics.ages == [pytest.approx(29 * 86400)]
    assert repository.count_before(NOW) == 2


def test_a_dry_run_counts_and_removes_nothing() -> None:
    repository = stocked([40, 31, 1])
    report = Retention(repository, 30, RetentionRecorder(), clock=lambda: NOW).run_pass(dry_run=True)
    assert (report.removed, report.dry_run) == (2, True)
    assert repository.count_before(NOW) == 3


def test_a_pass_does_nothing_while_another_holds_the_lock() -> None:
    repository = stocked([40])
    retention = Retention(repository, 30, RetentionRecorder(), clock=lambda: NOW)
    with repository.retention_lock():
        report = retention.run_pass()
    assert (report.ran, report.removed) == (False, 0)
    assert retention.run_pass().removed == 1


def test_a_stopped_pass_ends_between_chunks() -> None:
    repository = stocked([40, 39, 38, 37])
    stop = threading.Event()

    class StopAfterFirst(RetentionRecorder):
        def retention_removed(self, count: int) -> None:
            stop.set()

    retention = Retention(repository, 30, StopAfterFirst(), chunk_rows=1, clock=lambda: NOW)
    assert retention.run_pass(stop=stop).removed == 1


def test_the_lifecycle_task_runs_a_pass_and_refreshes_suppressions() -> None:
    repository = stocked([40, 1])
    repository.erase_user("gone", key_name="ops", suppress=True, at=NOW)
    suppressions = Suppressions(repository.suppressed_users)
    retention = Retention(repository, 30, RetentionRecorder(), clock=lambda: NOW)
    log = ListLog()
    task = LifecycleTask(retention, 3600, suppressions.refresh, 0.01, log)
    try:
        for _ in range(200):
            if any(line["event"] == "retention_pass" for line in log.lines) and suppressions.refuses("gone"):
                break
            threading.Event().wait(0.01)
    finally:
        task.close()
    assert repository.count_before(NOW) == 1
    assert suppressions.refuses("gone")
    assert not suppressions.refuses("other")


def test_erasure_refuses_an_empty_user_id_and_feeds_the_suppression_list() -> None:
    repository = stocked([1])
    suppressions = Suppressions(repository.suppressed_users)
    with pytest.raises(InvalidEvent):
        erase_user(repository, "", key_name="ops")
    erasure = erase_user(repository, "u1", key_name="ops", suppress=True, suppressions=suppressions, clock=lambda: NOW)
    assert (erasure.events_removed, erasure.user_id_sha256) == (1, user_digest("u1"))
    assert suppressions.refuses("u1")  # at once in this process, before any refresh


def test_the_service_refuses_and_counts_events_of_a_suppressed_user() -> None:
    repository = InMemoryEventRepository()
    suppressions = Suppressions(lambda: frozenset({user_digest("gone")}))
    suppressions.refresh()
    metrics = RecordingMetrics()
    service = EventService(ImmediateWriter(repository), repository, metrics, ListLog(), suppressions=suppressions)
    draft = EventDraft(user_id="gone", action="a", source="s", metadata={})
    with pytest.raises(UserErased):
        asyncio.run(service.record_event(draft))
    outcomes = asyncio.run(
        service.record_batch([draft, EventDraft(user_id="kept", action="a", source="s", metadata={})])
    )
    assert isinstance(outcomes[0], UserErased)
    assert metrics.rejected == {"user_erased": 2}
    assert [e.user_id for e in repository.iter_events(EventQuery(EventFilter()))] == ["kept"]


def test_import_counts_each_outcome_and_strict_stops_before_storing_what_follows() -> None:
    repository = InMemoryEventRepository()
    service = EventService(ImmediateWriter(repository), repository, RecordingMetrics(), ListLog())

    def draft(user: str, **kw: object) -> EventDraft:
        return EventDraft(user_id=user, action="a", source="s", metadata={}, **kw)  # type: ignore[arg-type]

    old = datetime(1990, 1, 1, tzinfo=UTC)
    records = [
        (1, draft("a")),
        (2, SkippedRecord("identify")),
        (3, BadRecord("not JSON")),
        (4, draft("b", timestamp=old)),
        (5, draft("c")),
    ]
    problems: list[tuple[int, str]] = []
    summary = asyncio.run(
        import_records(service, records, batch_size=2, on_problem=lambda n, m: problems.append((n, m)))
    )
    assert summary.counts() == {"accepted": 2, "duplicate": 0, "conflict": 0, "invalid": 2, "skipped": 1}
    assert [n for n, _ in problems] == [3, 4]

    fresh = InMemoryEventRepository()
    strict_service = EventService(ImmediateWriter(fresh), fresh, RecordingMetrics(), ListLog())
    summary = asyncio.run(import_records(strict_service, [(1, draft("x")), (2, draft("y", timestamp=old)),
                                                          (3, draft("z"))], strict=True))  # fmt: skip
    assert summary.stopped_at == 2
    assert [e.user_id for e in fresh.iter_events(EventQuery())] == ["x"]
