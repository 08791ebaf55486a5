"""Reading events back: what `export` writes (NDJSON, CSV, Parquet) and Segment/PostHog messages, one a line.

Each record becomes an EventDraft through the API's own request schema (field types, lengths, control
characters), so an import refuses what the API refuses; the service then applies the event limits. A record
that cannot become a draft is a BadRecord with its line (or row) number, never an exception: the importer
reports it and goes on.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, BinaryIO, Literal

from pydantic import TypeAdapter, ValidationError

from app.api.compat.sdk_mapping import (
    Acknowledged,
    UnmappableMessage,
    posthog_event_to_draft,
    segment_message_to_draft,
)
from app.api.schemas import EventIn, UtcDatetime
from app.export_format import CSV_COLUMNS
from app.json_codec import load_json
from app.services.event_service import EventDraft
from app.services.importing import BadRecord, Record, SkippedRecord

ImportFormat = Literal["ndjson", "csv", "parquet"]


class ExportedEvent(EventIn):
    """An event as `export` writes it: the API's fields plus the server time it was first received."""

    received_at: UtcDatetime | None = None

    def to_draft(self) -> EventDraft:
        return replace(super().to_draft(), received_at=self.received_at)


_exported: TypeAdapter[ExportedEvent] = TypeAdapter(ExportedEvent)


@dataclass(frozen=True, slots=True)
class SdkSources:
    """Source names for Segment and PostHog messages (the settings the SDK routes use); None: from the SDK."""

    segment: str | None = None
    posthog: str | None = None


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error.get("loc", ())) or "event"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


def record_to_draft(value: Any, sources: SdkSources, now: datetime) -> Record:
    """One parsed JSON value as a draft: our own export shape, a Segment message or a PostHog event."""
    if not isinstance(value, Mapping):
        return BadRecord("not a JSON object")
    try:
        if "action" in value or "user_id" in value:
            return _exported.validate_python(value).to_draft()
        if "type" in value and ("userId" in value or "anonymousId" in value or "messageId" in value):
            mapped = segment_message_to_draft(value, source_override=sources.segment)
        elif "event" in value and ("distinct_id" in value or "properties" in value):
            mapped = posthog_event_to_draft(value, received_at=now, source_override=sources.posthog)
        else:
            return BadRecord("neither an exported event (user_id, action) nor a Segment or PostHog message")
    except ValidationError as exc:
        return BadRecord(_validation_message(exc))
    except UnmappableMessage as exc:
        return BadRecord(str(exc))
    if isinstance(mapped, Acknowledged):
        return SkippedRecord(mapped.kind)
    return mapped


def _now() -> datetime:
    return datetime.now(UTC)


def ndjson_records(stream: BinaryIO, sources: SdkSources, progress: Any = None) -> Iterator[tuple[int, Record]]:
    """One record a line; blank lines are skipped (they hold nothing), every other line counts."""
    now = _now()
    for number, line in enumerate(stream, start=1):
        if progress is not None:
            progress(len(line))
        if not line.strip():
            continue
        try:
            value = load_json(line)
        except ValueError as exc:
            yield number, BadRecord(f"not JSON: {exc}")
            continue
        yield number, record_to_draft(value, sources, now)


def csv_records(stream: BinaryIO, sources: SdkSources, progress: Any = None) -> Iterator[tuple[int, Record]]:
    """The CSV `export` writes: a header naming the columns, metadata as JSON text, empty sent_at for none."""

    def lines() -> Iterator[str]:
        for raw in stream:
            if progress is not None:
                progress(len(raw))
            yield raw.decode("utf-8", errors="replace")

    reader = csv.reader(lines())
    header = next(reader, None)
    if header is None:
        return
    missing = [c for c in ("user_id", "action", "source") if c not in header]
    if missing:
        yield 1, BadRecord(f"the header lacks {', '.join(missing)}; expected {','.join(CSV_COLUMNS)}")
        return
    now = _now()
    for row in reader:
        number = reader.line_num
        if len(row) != len(header):
            yield number, BadRecord(f"{len(row)} fields; the header has {len(header)}")
            continue
        record: dict[str, Any] = {k: v for k, v in zip(header, row, strict=True) if v != "" or k == "user_id"}
        if "metadata" in record:
            try:
                record["metadata"] = load_json(record["metadata"])
            except ValueError as exc:
                yield number, BadRecord(f"metadata is not JSON: {exc}")
                continue
        yield number, record_to_draft(record, sources, now)


def parquet_records(path: Any, sources: SdkSources, progress: Any = None) -> Iterator[tuple[int, Record]]:
    """The Parquet file `export --format parquet` writes, a row group at a time; numbers are rows (1 = first)."""
    import pyarrow.parquet as pq

    now = _now()
    number = 0
    with pq.ParquetFile(path) as parquet:
        for batch in parquet.iter_batches(batch_size=10_000):
            for row in batch.to_pylist():
                number += 1
                text = row.get("metadata")
                if isinstance(text, str):
                    try:
                        row["metadata"] = load_json(text)
                    except ValueError as exc:
                        yield number, BadRecord(f"metadata is not JSON: {exc}")
                        continue
                yield number, record_to_draft({k: v for k, v in row.items() if v is not None}, sources, now)
            if progress is not None:
                progress(batch.num_rows)


def parquet_rows(path: Any) -> int:
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as parquet:
        return int(parquet.metadata.num_rows)


def text_records(
    stream: BinaryIO, fmt: Literal["ndjson", "csv"], sources: SdkSources, progress: Any = None
) -> Iterator[tuple[int, Record]]:
    return (ndjson_records if fmt == "ndjson" else csv_records)(stream, sources, progress)
