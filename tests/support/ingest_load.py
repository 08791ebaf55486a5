"""Concurrent ingest load for the durability tests: remembers every event the server acknowledged.

Clients choose every event_id, so after a crash the test knows exactly which facts must be in the database
(those whose request got a 2xx) and what each must look like, byte for byte.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

_counter = itertools.count()


def make_event(client: int) -> dict[str, Any]:
    """A distinct event whose every field survives a round trip unchanged (fixed-width UTC timestamps)."""
    n = next(_counter)
    return {
        "event_id": str(uuid.uuid4()),
        "user_id": f"user-{client}-{n % 7}",
        "action": ("view", "click", "purchase")[n % 3],
        "source": ("web", "ios")[n % 2],
        "timestamp": f"2026-05-01T10:{n // 60 % 60:02d}:{n % 60:02d}.{n % 1_000_000:06d}Z",
        "sent_at": f"2026-05-01T11:00:00.{n % 1_000_000:06d}Z" if n % 2 else None,
        "metadata": {"n": n, "tags": ["é", "✓", n % 5], "nested": {"ok": n % 2 == 0, "none": None}},
    }


@dataclass
class LoadResult:
    acknowledged: dict[str, dict[str, Any]] = field(default_factory=dict)  # event_id -> event as sent
    refused: dict[str, dict[str, Any]] = field(default_factory=dict)  # got a 503: must not be stored
    statuses: dict[int, int] = field(default_factory=dict)
    retry_after: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)  # transport errors (expected once the server dies)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, status: int) -> None:
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1


class IngestLoad:
    """`clients` threads, each posting single events and batches of `batch_size` until stopped or refused."""

    def __init__(self, base_url: str, clients: int = 8, batch_size: int = 20) -> None:
        self.base_url = base_url
        self.batch_size = batch_size
        self.result = LoadResult()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)]

    def __enter__(self) -> IngestLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout_s: float = 30) -> LoadResult:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout_s)
        return self.result

    def wait_acknowledged(self, count: int, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.result.acknowledged) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self.result.acknowledged)} events acknowledged: {self.result}")
            time.sleep(0.02)

    def _run(self, client_no: int) -> None:
        result = self.result
        with httpx.Client(base_url=self.base_url, timeout=30) as client:
            for i in itertools.count():
                if self._stop.is_set():
                    return
                single = i % 2 == 0
                events = [make_event(client_no)] if single else [make_event(client_no) for _ in range(self.batch_size)]
                try:
                    if single:
                        response = client.post("/v1/events", json=events[0])
                    else:
                        response = client.post("/v1/events/batch", json={"events": events})
                except httpx.TransportError as exc:
                    with result.lock:
                        result.errors.append(repr(exc))
                    return  # the server is gone (killed or stopping)
                result.count(response.status_code)
                with result.lock:
                    if response.status_code in (200, 201):
                        statuses = ["accepted"] if single else [r["status"] for r in response.json()["results"]]
                        for event, status in zip(events, statuses, strict=True):
                            if status in ("accepted", "duplicate"):
                                result.acknowledged[event["event_id"]] = event
                            else:
                                result.errors.append(f"{status}: {response.text}")
                    elif response.status_code == 503:
                        result.retry_after.add(response.headers.get("retry-after", ""))
                        for event in events:
                            result.refused[event["event_id"]] = event
                    else:
                        result.errors.append(f"{response.status_code}: {response.text}")


def stored_events(db_path: Path) -> dict[str, dict[str, Any]]:
    """Every stored event as the client would have sent it, read straight from the file."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT event_id, user_id, action, source, timestamp, sent_at, metadata FROM events"
        ).fetchall()
    finally:
        conn.close()
    return {
        row[0]: {
            "event_id": row[0],
            "user_id": row[1],
            "action": row[2],
            "source": row[3],
            "timestamp": row[4],
            "sent_at": row[5],
            "metadata": json.loads(row[6]),
        }
        for row in rows
    }


def integrity_check(db_path: Path) -> str:
    conn = sqlite3.connect(db_path)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def assert_all_acknowledged_stored(db_path: Path, acknowledged: dict[str, dict[str, Any]]) -> None:
    stored = stored_events(db_path)
    missing = [event_id for event_id in acknowledged if event_id not in stored]
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:3]}"
    different = [event_id for event_id, sent in acknowledged.items() if stored[event_id] != sent]
    assert not different, f"stored differently: {[(acknowledged[i], stored[i]) for i in different[:2]]}"
