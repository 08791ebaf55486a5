"""The writer process's wire protocol: length-prefixed orjson frames over a Unix stream socket.

Each frame is a 4-byte big-endian length, then that many bytes of JSON. A worker keeps one connection and
may have many requests in flight on it; answers come back in commit order, matched by request number.
Frames share writes: a worker sends the requests of one event-loop turn in one write, the writer process
a transaction's answers to one worker in one write (fewer system calls and wake-ups on both sides).

    request  [n, [row, ...]]                  row = [event_id, user_id, action, source, timestamp,
                                                     received_at, sent_at or null, metadata]
    answer   [n, true, [result, ...], commits] result = [status] for an accepted event (it is the one sent),
                                                        [status, conflicting_fields, stored row] otherwise
    refusal  [n, false, kind, message, commits] kind = "queue_full" | "closed" | "unavailable"
    depth    [0, "queue_depth", events, wal]   unasked, to one connection: events waiting for commit, and
                                               the WAL's size in bytes (null off SQLite)

An answer is sent only after the transaction holding the request's events has committed. `commits` lists
[events, seconds] of the transactions committed since the previous frame on any connection (and
[-1, seconds, complete] of its WAL checkpoints): each is reported once, so the workers' metrics add up to
the writer's.
Times are RFC 3339 UTC text ("Z"); metadata is the JSON object itself, or its JSON text (a string) in the
rare case orjson cannot write it (an integer past 64 bits). One orjson call encodes a whole request.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

from app.json_codec import dump_json, load_json, orjson_default
from app.models import UserActionEvent
from app.repository.port import AddResult, AddStatus
from app.repository.sqlite import TableRow
from app.utc_text import to_utc_text

HEADER_BYTES = 4
MAX_FRAME_BYTES = 256 * 2**20  # far above the write queue's worth of events; a bound against a broken peer

Row = list[Any]
Result = list[Any]  # [status] for an accepted event, [status, conflicting_fields, stored row] otherwise
Commits = list[list[float]]
ACCEPTED: Result = [AddStatus.ACCEPTED.value]


def frame(message: Any) -> bytes:
    body = orjson.dumps(message, default=orjson_default, option=orjson.OPT_UTC_Z)
    return len(body).to_bytes(HEADER_BYTES, "big") + body


def frame_length(header: bytes) -> int:
    length = int.from_bytes(header, "big")
    if length > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {length} bytes is over the protocol's bound")
    return length


def event_row(event: UserActionEvent) -> Row:
    # UUIDs and datetimes as they are: orjson writes them itself, much faster than Python can.
    return [
        event.event_id,
        event.user_id,
        event.action,
        event.source,
        event.timestamp,
        event.received_at,
        event.sent_at,
        event.metadata,
    ]


def _table_time(text: str) -> str:
    # orjson writes a UTC moment as '2026-01-02T03:04:05.000006Z', the table's own form, unless its
    # microseconds are 0 ('...:05Z'): only those are parsed and written again.
    if len(text) == 27 and text[19] == "." and text[26] == "Z":
        return text
    return to_utc_text(_moment(text))


def table_row(row: Sequence[Any]) -> TableRow:
    """A request's row as the events table's columns (sqlite.table_row of the same event), without building
    the event: what the writer process inserts. Event ids and moments arrive in their stored text form
    already; metadata is written as the JSON text the table keeps."""
    event_id, user_id, action, source, timestamp, received_at, sent_at, metadata = row
    if len(event_id) != 36:
        raise ValueError(f"not an event id: {event_id!r}")
    return (
        event_id,
        user_id,
        action,
        source,
        _table_time(timestamp),
        _table_time(received_at),
        _table_time(sent_at) if sent_at else None,
        metadata if type(metadata) is str else dump_json(metadata),
    )


def _text_metadata(row: Row) -> Row:
    return [*row[:7], dump_json(row[7])]


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is not UTC:
        raise ValueError(f"not a UTC time: {text!r}")
    return moment


def row_event(row: Sequence[Any]) -> UserActionEvent:
    metadata = row[7]
    return UserActionEvent(
        event_id=UUID(row[0]),
        user_id=row[1],
        action=row[2],
        source=row[3],
        timestamp=_moment(row[4]),
        received_at=_moment(row[5]),
        sent_at=_moment(row[6]) if row[6] else None,
        metadata=load_json(metadata) if isinstance(metadata, str) else metadata,
    )


def _rows_frame(head: list[Any], rows: list[Row], tail: list[Any]) -> bytes:
    try:
        return frame([*head, rows, *tail])
    except TypeError:  # orjson stops at 64-bit integers: the standard library writes such metadata as text
        return frame([*head, [_text_metadata(row) for row in rows], *tail])


DEPTH = 0  # request numbers start at 1: 0 marks a pushed queue depth


def depth(events: int, wal_bytes: int | None) -> bytes:
    return frame([DEPTH, "queue_depth", events, wal_bytes])


def request(number: int, events: Sequence[UserActionEvent]) -> bytes:
    return _rows_frame([number], [event_row(e) for e in events], [])


def encode_results(results: Sequence[AddResult]) -> list[Result]:
    if all(result.status is AddStatus.ACCEPTED for result in results):
        return [ACCEPTED] * len(results)
    encoded: list[Result] = []
    for result in results:
        if result.status is AddStatus.ACCEPTED:
            encoded.append(ACCEPTED)
        else:
            encoded.append([result.status.value, list(result.conflicting_fields), event_row(result.event)])
    return encoded


def answer(number: int, results: Sequence[Result], commits: Commits) -> bytes:
    try:
        return frame([number, True, results, commits])
    except TypeError:  # a stored row's metadata orjson cannot write: as JSON text, like a request's
        text = [item if len(item) == 1 else [item[0], item[1], _text_metadata(item[2])] for item in results]
        return frame([number, True, text, commits])


def refusal(number: int, kind: str, message: str, commits: Commits) -> bytes:
    return frame([number, False, kind, message, commits])


def decode_results(encoded: Sequence[Sequence[Any]], sent: Sequence[UserActionEvent]) -> list[AddResult]:
    if len(encoded) != len(sent):
        raise ValueError(f"{len(encoded)} results for {len(sent)} events")
    results = []
    for item, event in zip(encoded, sent, strict=True):
        status = AddStatus(item[0])
        if status is AddStatus.ACCEPTED:
            results.append(AddResult(status, event))
        else:
            results.append(AddResult(status, row_event(item[2]), tuple(item[1])))
    return results
