"""GroupCommitWriter.submit: the writer without an event loop (what the writer process serves with)."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import pytest

from app.repository.group_commit import GroupCommitWriter, WriteQueueFull, WriterClosed
from app.repository.port import AddStatus
from tests.unit.fakes import RecordingMetrics
from tests.unit.test_group_commit import GatedRepository, event


def test_submit_delivers_the_results_on_the_writer_thread_after_the_transaction() -> None:
    repo = GatedRepository()
    writer = GroupCommitWriter(repo, RecordingMetrics())
    outcomes: queue.Queue[tuple[Any, str]] = queue.Queue()
    sent = [event(), event()]
    writer.submit(sent, lambda outcome: outcomes.put((outcome, threading.current_thread().name)))
    assert outcomes.empty()  # the transaction has not run: no answer yet
    repo.gate.set()
    results, thread = outcomes.get(timeout=5)
    assert [(r.status, r.event) for r in results] == [(AddStatus.ACCEPTED, e) for e in sent]
    assert thread == "group-commit-writer"
    assert repo.transactions == [2]
    writer.close()


def test_submit_refuses_at_once_when_full_or_closed_and_a_failing_callback_does_not_stop_the_writer() -> None:
    repo = GatedRepository()
    writer = GroupCommitWriter(repo, RecordingMetrics(), max_queue=2)

    delivered: queue.Queue[Any] = queue.Queue()

    def explode(outcome: Any) -> None:
        delivered.put(outcome)
        raise RuntimeError("the receiver broke")

    writer.submit([event()], explode)
    time.sleep(0.05)  # the writer takes it and waits at the gate
    writer.submit([event(), event()], explode)  # queued: the queue is now full
    with pytest.raises(WriteQueueFull):
        writer.submit([event()], explode)
    repo.gate.set()
    for _ in range(2):  # both accepted requests answered (to a receiver that raised each time)
        assert delivered.get(timeout=5)[0].status is AddStatus.ACCEPTED
    later: queue.Queue[Any] = queue.Queue()
    writer.submit([event()], later.put)
    assert later.get(timeout=5)[0].status is AddStatus.ACCEPTED  # still writing after two failed callbacks
    writer.close()
    with pytest.raises(WriterClosed):
        writer.submit([event()], later.put)


def test_after_each_commit_runs_once_a_transaction_s_outcomes_have_all_been_delivered() -> None:
    repo = GatedRepository()
    writer = GroupCommitWriter(repo, RecordingMetrics())
    seen: list[str] = []
    done = threading.Event()
    writer.after_each_commit(lambda: (seen.append("after commit"), done.set()))
    writer.submit([event()], lambda _: seen.append("first"))
    writer.submit([event()], lambda _: seen.append("second"))
    time.sleep(0.05)  # both queued before the writer may take them
    repo.gate.set()
    assert done.wait(5)
    writer.close()
    # One transaction or two (the first may be taken alone): the hook follows each one's deliveries.
    assert seen in (["first", "second", "after commit"], ["first", "after commit", "second", "after commit"])
