"""What a backend's SQL module provides: the texts the loader and the metadata look-ups run on the store."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StoreQueries:
    # The engine's (DuckDB) expression turning a loaded time {column} into a naive UTC TIMESTAMP.
    engine_time: str
    # One row: first, last (the range of seq, the insertion order).
    seq_bounds: str
    # Rows with low <= seq < high (two positional parameters, ADBC style) as seq, user_id, action, source,
    # timestamp, received_at (UTC text or naive UTC timestamps), no_sent_at (1/0), metadata (JSON text).
    events_between: str
    # seq, metadata of the rows whose seq is in a JSON array of integers (one parameter, ADBC style).
    metadata_of: str
    # seq, metadata of the rows with low <= seq < high whose metadata text holds a quoted key (three
    # parameters, ADBC style).
    metadata_naming: str
    # One row: rows, seq_sum of the rows with seq <= one parameter (DB-API style): the fingerprint a cached
    # copy of those rows is checked against (a removal lowers it, a late or reused seq moves it).
    rows_through: str
    # The event_id of the row with seq = one parameter (DB-API style), if any.
    event_id_at: str
    # One row: ids (event_ids stored more than once), extra_rows.
    duplicate_event_ids: str
