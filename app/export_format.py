"""Events as NDJSON or CSV bytes, a chunk at a time: shared by GET /v1/events/export and `python -m app export`.

Both formats carry the same fields as the event JSON of the API. NDJSON writes the metadata exactly as the
store serialises it; CSV puts that same JSON text in its metadata column.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Literal

from app.json_codec import dump_json, event_document
from app.models import UserActionEvent

ExportFormat = Literal["ndjson", "csv"]
MEDIA_TYPES: dict[str, str] = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
CSV_COLUMNS = ("event_id", "user_id", "action", "source", "timestamp", "received_at", "sent_at", "metadata")
CHUNK_EVENTS = 500  # events per chunk: few thread hops and writes, little memory


def _chunks(events: Iterable[UserActionEvent]) -> Iterator[list[UserActionEvent]]:
    iterator = iter(events)
    while chunk := list(islice(iterator, CHUNK_EVENTS)):
        yield chunk


def ndjson_chunks(events: Iterable[UserActionEvent]) -> Iterator[bytes]:
    """One JSON object a line, in the order given."""
    for chunk in _chunks(events):
        yield "".join(dump_json(event_document(e)) + "\n" for e in chunk).encode()


def csv_chunks(events: Iterable[UserActionEvent]) -> Iterator[bytes]:
    """A header line, then one row an event (RFC 4180 quoting; sent_at empty when absent)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue().encode()
    for chunk in _chunks(events):
        buffer.seek(0)
        buffer.truncate()
        for event in chunk:
            record = event_document(event)
            record["metadata"] = dump_json(event.metadata)
            writer.writerow(["" if record[c] is None else record[c] for c in CSV_COLUMNS])
        yield buffer.getvalue().encode()


def export_chunks(events: Iterable[UserActionEvent], fmt: ExportFormat) -> Iterator[bytes]:
    return ndjson_chunks(events) if fmt == "ndjson" else csv_chunks(events)
