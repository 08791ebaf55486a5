import asyncio
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from app.models import UserActionEvent
from app.repository.group_commit import GroupCommitWriter, WriteQueueFull
from app.repository.memory import InMemoryEventRepository
from app.repository.port import AddResult, AddStatus, StorageUnavailable
from tests.unit.fakes import RecordingMetrics


def event(**overrides: object) -> UserActionEvent:
    values: dict[str, object] = {
        "event_id": uuid4(),
        "user_id": "u",
        "action": "a",
        "timestamp": datetime(2026, 1, 1, tzinfo=UTC),
        "source": "s",
    }
    values.update(overrides)
    return UserActionEvent(**values)  # type: ignore[arg-type]


class GatedRepository(InMemoryEventRepository):
    """Blocks each add until the test opens the gate, and counts transactions."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.transactions: list[int] = []
        self.fail_ids: set[object] = set()

    def add(self, events: Sequence[UserActionEvent]) -> list[AddResult]:
        self.gate.wait(10)
        self.transactions.append(len(events))
        if any(e.event_id in self.fail_ids for e in events):
            raise OSError("disk on fire")
        return super().add(events)


def test_concurrent_appends_share_one_transaction() -> None:
    async def scenario() -> None:
        repo = GatedRepository()
        writer = GroupCommitWriter(repo, RecordingMetrics())
        first = asyncio.create_task(writer.append([event()]))
        await asyncio.sleep(0.05)  # the writer takes the first request and waits at the gate
        rest = [asyncio.create_task(writer.append([event()])) for _ in range(20)]
        await asyncio.sleep(0.05)
        repo.gate.set()
        results = await asyncio.gather(first, *rest)
        assert all(r[0].status is AddStatus.ACCEPTED for r in results)
        assert repo.transactions == [1, 20]
        writer.close()

    asyncio.run(scenario())


def test_full_queue_refuses_at_once_and_counts_it() -> None:
    async def scenario() -> None:
        repo = GatedRepository()
        metrics = RecordingMetrics()
        writer = GroupCommitWriter(repo, metrics, max_queue=5)
        blocked = asyncio.create_task(writer.append([event()]))
        await asyncio.sleep(0.05)
        waiting = asyncio.create_task(writer.append([event() for _ in range(5)]))
        await asyncio.sleep(0.05)
        with pytest.raises(WriteQueueFull):
            await writer.append([event()])
        assert metrics.full == 1
        repo.gate.set()
        await asyncio.gather(blocked, waiting)
        writer.close()

    asyncio.run(scenario())


def test_one_failing_request_does_not_fail_the_others_in_its_group() -> None:
    async def scenario() -> None:
        repo = GatedRepository()
        writer = GroupCommitWriter(repo, RecordingMetrics())
        blocker = asyncio.create_task(writer.append([event()]))
        await asyncio.sleep(0.05)
        bad = event()
        repo.fail_ids.add(bad.event_id)
        good_task = asyncio.create_task(writer.append([event()]))
        bad_task = asyncio.create_task(writer.append([bad]))
        await asyncio.sleep(0.05)
        repo.gate.set()
        await blocker
        assert (await good_task)[0].status is AddStatus.ACCEPTED
        with pytest.raises(StorageUnavailable):
            await bad_task
        writer.close()

    asyncio.run(scenario())


def test_close_commits_everything_queued() -> None:
    async def scenario() -> None:
        repo = GatedRepository()
        writer = GroupCommitWriter(repo, RecordingMetrics())
        tasks = [asyncio.create_task(writer.append([event()])) for _ in range(10)]
        await asyncio.sleep(0.05)
        repo.gate.set()
        closer = asyncio.get_running_loop().run_in_executor(None, writer.close)
        await asyncio.gather(*tasks)
        assert await closer is True
        assert sum(repo.transactions) == 10

    asyncio.run(scenario())


class UnreachableRepository(InMemoryEventRepository):
    """The store answers every add with StorageUnavailable, as a backend does while its database is down."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.calls = 0

    def add(self, events: Sequence[UserActionEvent]) -> list[AddResult]:
        self.gate.wait(10)
        self.calls += 1
        raise StorageUnavailable("database unreachable")


def test_an_unreachable_store_fails_the_whole_group_in_one_attempt() -> None:
    async def scenario() -> None:
        repo = UnreachableRepository()
        writer = GroupCommitWriter(repo, RecordingMetrics())
        first = asyncio.create_task(writer.append([event()]))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(writer.append([event()])) for _ in range(5)]
        await asyncio.sleep(0.05)
        repo.gate.set()
        outcomes = await asyncio.gather(first, *rest, return_exceptions=True)
        assert all(isinstance(o, StorageUnavailable) for o in outcomes)
        assert repo.calls == 2  # the first request alone, then the five queued behind it together
        writer.close()

    asyncio.run(scenario())
