"""NDJSON/CSV encoding of events, and the JSON codec's exact round trip that export relies on."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from uuid import uuid4

from app.export_format import CSV_COLUMNS, csv_chunks, ndjson_chunks
from app.json_codec import dump_json, load_json
from app.models import UserActionEvent

MOMENT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _event(index: int, metadata: dict[str, object] | None = None) -> UserActionEvent:
    return UserActionEvent(
        event_id=uuid4(), user_id=f"user-{index}", action="click", source="web", timestamp=MOMENT,
        metadata=metadata or {"i": index}, received_at=MOMENT,
    )  # fmt: skip


def test_integers_past_64_bits_survive_a_store_and_load() -> None:
    metadata = {"big": 2**80 + 1, "negative": -(2**70), "ok": 5}
    assert load_json(dump_json(metadata)) == metadata
    assert load_json(dump_json(metadata).encode()) == metadata
    assert dump_json(load_json(dump_json(metadata))) == dump_json(metadata)  # same bytes after a round trip


def test_ndjson_has_one_event_a_line_across_chunks() -> None:
    events = [_event(i) for i in range(1_203)]  # more than two chunks
    lines = b"".join(ndjson_chunks(events)).decode().splitlines()
    assert [json.loads(line)["user_id"] for line in lines] == [e.user_id for e in events]


def test_csv_quotes_metadata_and_leaves_absent_sent_at_empty() -> None:
    event = _event(1, {"text": 'comma, "quote"\nnewline'})
    rows = list(csv.reader(io.StringIO(b"".join(csv_chunks([event])).decode(), newline="")))
    assert rows[0] == list(CSV_COLUMNS)
    record = dict(zip(CSV_COLUMNS, rows[1], strict=True))
    assert json.loads(record["metadata"]) == {"text": 'comma, "quote"\nnewline'}
    assert record["sent_at"] == ""


def test_an_empty_store_exports_only_the_csv_header() -> None:
    assert b"".join(ndjson_chunks([])) == b""
    assert b"".join(csv_chunks([])).decode().strip() == ",".join(CSV_COLUMNS)
