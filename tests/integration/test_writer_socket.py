"""The writer process's protocol end to end in one process: a WriterClient talking over a real Unix socket
to the WriterServer that `python -m app.repository.writer_process` runs, on a real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.models import UserActionEvent
from app.repository import writer_protocol as wire
from app.repository.group_commit import GroupCommitWriter, WriteQueueFull
from app.repository.port import AddResult, AddStatus, EventRepository, StorageUnavailable
from app.repository.sqlite import SqliteEventRepository, table_row
from app.repository.writer_client import SEND_AT, WriterClient
from app.repository.writer_process import ReportedCommits, RowStore, WriterServer
from app.repository.writer_protocol import HEADER_BYTES, request, row_event
from tests.support.event_strategies import NAME_TEXT, metadata, utc_moments
from tests.unit.fakes import RecordingMetrics
from tests.unit.test_group_commit import GatedRepository


def event(**fields: Any) -> UserActionEvent:
    values: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "user_id": "u1",
        "action": "click",
        "source": "web",
        "timestamp": datetime(2026, 5, 1, 10, 0, 0, 123456, tzinfo=UTC),
        "metadata": {"n": 1},
    }
    values.update(fields)
    return UserActionEvent(**values)


@given(
    user_id=st.text(NAME_TEXT, min_size=1, max_size=64),
    timestamp=utc_moments,
    sent_at=st.none() | utc_moments,
    meta=metadata,
)
def test_a_row_carries_every_field_of_an_event_exactly(
    user_id: str, timestamp: datetime, sent_at: datetime | None, meta: dict[str, Any]
) -> None:
    original = event(user_id=user_id, timestamp=timestamp, sent_at=sent_at, metadata=meta)
    back = through_the_wire(original)
    assert back == original
    assert back.same_fact_as(original)
    # The writer process inserts the row without building the event: each column's text must be what
    # SQLite's add() writes for it (moments with 0 microseconds and integers past 64 bits take other routes).
    _, (row,) = orjson.loads(request(7, [original])[HEADER_BYTES:])
    assert wire.table_row(row) == table_row(original)


def through_the_wire(original: UserActionEvent) -> UserActionEvent:
    number, (row,) = orjson.loads(request(7, [original])[HEADER_BYTES:])
    assert number == 7
    return row_event(row)


def test_metadata_orjson_cannot_write_travels_as_json_text() -> None:
    original = event(metadata={"huge": 2**70, "nested": {"neg": -(2**80)}})
    assert through_the_wire(original).metadata == {"huge": 2**70, "nested": {"neg": -(2**80)}}


def test_rows_with_whole_seconds_and_huge_integers_are_stored_as_in_process(tmp_path: Path) -> None:
    """End to end: the same events through the writer process and through add() in-process give the same
    table, column for column."""
    events = [
        event(timestamp=datetime(2026, 5, 1, 10, 0, 0, tzinfo=UTC), sent_at=datetime(2026, 5, 1, 10, 0, 1, tzinfo=UTC)),
        event(timestamp=datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC), metadata={"huge": 2**70, "é": ["ü", None, 1.5]}),
        event(user_id="ユーザー", metadata={"nested": {"deep": [1, {"x": -(2**80)}]}}),
    ]

    async def scenario() -> None:
        async with writer_socket(tmp_path / "w.sock") as (client, _):
            assert {r.status for r in await client.append(events)} == {AddStatus.ACCEPTED}

    run(scenario)
    direct = SqliteEventRepository(tmp_path / "direct.db")
    direct.add(events)
    direct.close()
    query = (
        "SELECT event_id, user_id, action, source, timestamp, received_at, sent_at, metadata FROM events ORDER BY seq"
    )
    with sqlite3.connect(tmp_path / "events.db") as through, sqlite3.connect(tmp_path / "direct.db") as inline:
        assert through.execute(query).fetchall() == inline.execute(query).fetchall()


def test_add_new_writes_nothing_when_one_event_id_is_known(tmp_path: Path) -> None:
    repository = SqliteEventRepository(tmp_path / "events.db")
    try:
        known = event()
        repository.add([known])
        fresh = event()
        assert repository.add_new([table_row(fresh), table_row(known)]) is False
        assert repository.get(fresh.event_id) is None  # rolled back: the caller retries through add()
        assert repository.add_new([table_row(fresh)]) is True
        assert repository.get(fresh.event_id) == fresh
    finally:
        repository.close()


def test_the_row_store_tells_duplicates_and_conflicts_apart_like_add(tmp_path: Path) -> None:
    repository = SqliteEventRepository(tmp_path / "events.db")
    try:
        store = RowStore(repository)
        first = event()
        assert store.add([table_row(first)]) == [wire.ACCEPTED]
        changed = event(event_id=first.event_id, metadata={"n": 2})
        fresh = event()
        results = store.add([table_row(first), table_row(changed), table_row(fresh)])
        assert [r[0] for r in results] == ["duplicate", "conflict", "accepted"]
        assert results[1][1] == ["metadata"]
        assert repository.get(fresh.event_id) == fresh
    finally:
        repository.close()


@asynccontextmanager
async def writer_socket(
    path: Path, max_queue: int = 10_000, repository: EventRepository | None = None
) -> AsyncIterator[tuple[WriterClient, RecordingMetrics]]:
    repository = repository or SqliteEventRepository(path.parent / "events.db")
    commits = ReportedCommits()
    writer = GroupCommitWriter(RowStore(repository), commits, max_queue=max_queue)
    server = WriterServer(writer, commits)
    server.listen(path)
    metrics = RecordingMetrics()
    client = WriterClient(path, metrics, capacity=max_queue)
    try:
        yield client, metrics
    finally:
        await client.aclose()
        await asyncio.get_running_loop().run_in_executor(None, writer.close, 5.0)
        server.close()
        repository.close()


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


def test_answers_say_accepted_duplicate_or_conflict_with_the_stored_event(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with writer_socket(tmp_path / "w.sock") as (client, metrics):
            first = event()
            (accepted,) = await client.append([first])
            assert accepted.status is AddStatus.ACCEPTED
            assert accepted.event is first
            again, changed = await client.append([first, event(event_id=first.event_id, metadata={"n": 2})])
            assert again.status is AddStatus.DUPLICATE
            assert again.event == first
            assert changed.status is AddStatus.CONFLICT
            assert changed.conflicting_fields == ("metadata",)
            assert changed.event.metadata == {"n": 1}  # as first stored
            assert await client.append([]) == []
            assert sum(metrics.commits) == 3  # every committed event reported once

    run(scenario)


def test_many_concurrent_requests_share_transactions_and_each_gets_its_own_answer(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with writer_socket(tmp_path / "w.sock") as (client, metrics):
            requests = [[event(user_id=f"u{i}-{j}") for j in range(i % 4 + 1)] for i in range(200)]
            answers = await asyncio.gather(*(client.append(r) for r in requests))
            for sent, got in zip(requests, answers, strict=True):
                assert [a.event for a in got] == sent
                assert {a.status for a in got} == {AddStatus.ACCEPTED}
            assert sum(metrics.commits) == sum(len(r) for r in requests)
            assert len(metrics.commits) < len(requests)  # group commit: fewer transactions than requests

    run(scenario)


def test_a_long_turn_of_the_loop_sends_its_first_requests_before_it_ends(tmp_path: Path) -> None:
    """A burst parsed in one turn must not leave the writer idle until the turn's end: the first requests
    are committed while the loop is still busy (here: blocked on purpose, inside that very turn)."""

    def stored() -> int:
        with sqlite3.connect(tmp_path / "events.db") as db:
            return int(db.execute("SELECT count(*) FROM events").fetchone()[0])

    async def scenario() -> None:
        async with writer_socket(tmp_path / "w.sock") as (client, _):
            await client.append([event()])  # connected, and the schema exists
            burst = [asyncio.ensure_future(client.append([event(user_id=f"b{i}")])) for i in range(2 * SEND_AT + 1)]
            await asyncio.sleep(0)  # the burst's requests are made in the next turn; this step runs last in it
            deadline = time.monotonic() + 10
            while stored() < 1 + 2 * SEND_AT and time.monotonic() < deadline:
                time.sleep(0.01)  # noqa: ASYNC251 (on purpose: blocks the loop, so this turn does not end)
            assert stored() == 1 + 2 * SEND_AT  # the last one waits for the end of the turn
            answers = await asyncio.gather(*burst)
            assert [a.status for (a,) in answers] == [AddStatus.ACCEPTED] * (2 * SEND_AT + 1)
            assert stored() == 2 + 2 * SEND_AT

    run(scenario)


def test_one_thread_reads_every_worker_connection(tmp_path: Path) -> None:
    async def scenario() -> None:
        path = tmp_path / "w.sock"
        async with writer_socket(path) as (first, _):
            await first.append([event()])
            before = set(threading.enumerate())
            others = [WriterClient(path, RecordingMetrics(), capacity=100) for _ in range(5)]
            answers = await asyncio.gather(*(client.append([event()]) for client in others))
            assert [a.status for (a,) in answers] == [AddStatus.ACCEPTED] * 5
            # No thread per connection. Started threads, not a count: an earlier test's thread may end meanwhile.
            assert [t.name for t in threading.enumerate() if t not in before] == []
            for client in others:
                await client.aclose()

    run(scenario)


def test_a_full_queue_is_refused_at_once_and_counted_by_the_client(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with writer_socket(tmp_path / "w.sock", max_queue=5) as (client, metrics):
            # 30 requests of 3 events in one turn of the loop: the writer's queue of 5 must refuse some.
            outcomes = await asyncio.gather(
                *(client.append([event(), event(), event()]) for _ in range(30)), return_exceptions=True
            )
            refused = [o for o in outcomes if isinstance(o, BaseException)]
            assert refused
            assert all(isinstance(o, WriteQueueFull) for o in refused)
            assert metrics.full == len(refused)

    run(scenario)


class BlockedRepository(GatedRepository):
    """Says when the writer is inside its transaction, held at the gate."""

    waiting = False

    def add(self, events: Sequence[UserActionEvent]) -> list[AddResult]:
        self.waiting = True
        return super().add(events)


def test_the_writer_pushes_its_queue_depth_while_a_commit_is_blocked(tmp_path: Path) -> None:
    async def scenario() -> None:
        repository = BlockedRepository()
        async with writer_socket(tmp_path / "w.sock", repository=repository) as (client, metrics):
            first = asyncio.create_task(client.append([event()]))
            await until(lambda: repository.waiting)  # taken by the writer, blocked in its transaction
            queued = asyncio.create_task(client.append([event(), event()]))
            await until(lambda: bool(metrics.depths) and metrics.depths[-1] == 2)
            repository.gate.set()
            await asyncio.gather(first, queued)
            await until(lambda: metrics.depths[-1] == 0)

    run(scenario)


async def until(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_no_writer_listening_is_storage_unavailable_not_a_hang(tmp_path: Path) -> None:
    async def scenario() -> None:
        client = WriterClient(tmp_path / "nobody.sock", RecordingMetrics(), capacity=10)
        with pytest.raises(StorageUnavailable, match="not answering"):
            await client.append([event()])

    run(scenario)


def test_a_writer_that_goes_away_fails_requests_in_flight_and_the_next_append_reconnects(tmp_path: Path) -> None:
    async def scenario() -> None:
        path = tmp_path / "w.sock"

        # A stand-in that takes a request and closes the connection without answering, like a killed writer.
        async def hang_up(reader: asyncio.StreamReader, stream: asyncio.StreamWriter) -> None:
            await reader.read(1)
            stream.close()

        broken = await asyncio.start_unix_server(hang_up, path=str(path))
        metrics = RecordingMetrics()
        client = WriterClient(path, metrics, capacity=100)
        with pytest.raises(StorageUnavailable, match=r"went away|closed"):
            await client.append([event()])
        assert metrics.depths[-1] == 0
        broken.close()
        await broken.wait_closed()
        path.unlink()
        async with writer_socket(path) as (_, _):
            (result,) = await client.append([event()])  # the same client, a new connection
            assert result.status is AddStatus.ACCEPTED
        await client.aclose()

    run(scenario)
