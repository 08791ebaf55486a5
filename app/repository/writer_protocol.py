"""The writer process's wire protocol: length-prefixed orjson frames over a Unix stream socket.

Each frame is a 4-byte big-endian length, then that many bytes of JSON. A worker keeps one connection and
may have many requests in flight on it; answers come back in commit order, matched by request number.

    request  [n, [row, ...]]                  row = [event_id, user_id, action, source, timestamp,
                                                     received_at, sent_at or null, metadata JSON text]
    answer   [n, true, [result, ...], commits] result = [status] for an accepted event (it is the one sent),
                                                        [status, conflicting_fields, stored row] otherwise
    refusal  [n, false, kind, message, commits] kind = "queue_full" | "closed" | "unavailable"

An answer is sent only after the transaction holding the request's events has committed. `commits` lists
[events, seconds] of the transactions committed since the previous frame on any connection: each
transaction is reported once, so the workers' `committed` metrics add up to the writer's.
Times are the fixed-width UTC text the repository stores; metadata is the JSON text it stores.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

from app.json_codec import dump_json, load_json
from app.models import UserActionEvent, to_utc_text
from app.repository.events_repository import AddResult, AddStatus

HEADER_BYTES = 4
MAX_FRAME_BYTES = 256 * 2**20  # far above the write queue's worth of events; a bound against a broken peer

Row = list[Any]
Commits = list[list[float]]


def frame(message: Any) -> bytes:
    body = orjson.dumps(message)
    return len(body).to_bytes(HEADER_BYTES, "big") + body


def frame_length(header: bytes) -> int:
    length = int.from_bytes(header, "big")
    if length > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {length} bytes is over the protocol's bound")
    return length


def event_row(event: UserActionEvent) -> Row:
    return [
        str(event.event_id),
        event.user_id,
        event.action,
        event.source,
        to_utc_text(event.timestamp),
        to_utc_text(event.received_at),
        to_utc_text(event.sent_at) if event.sent_at else None,
        dump_json(event.metadata),
    ]


def _moment(text: str) -> datetime:
    # fromisoformat reads our fixed-width "...Z" text as UTC, ~20x faster than strptime; it must not be
    # lenient here, so anything else is refused.
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is not UTC or len(text) != _UTC_TEXT_LENGTH:
        raise ValueError(f"not a fixed-width UTC time: {text!r}")
    return moment


_UTC_TEXT_LENGTH = len("2026-01-02T03:04:05.000006Z")


def row_event(row: Sequence[Any]) -> UserActionEvent:
    return UserActionEvent(
        event_id=UUID(row[0]),
        user_id=row[1],
        action=row[2],
        source=row[3],
        timestamp=_moment(row[4]),
        received_at=_moment(row[5]),
        sent_at=_moment(row[6]) if row[6] else None,
        metadata=load_json(row[7]),
    )


def request(number: int, events: Sequence[UserActionEvent]) -> bytes:
    return frame([number, [event_row(e) for e in events]])


def answer(number: int, results: Sequence[AddResult], commits: Commits) -> bytes:
    encoded: list[list[Any]] = []
    for result in results:
        if result.status is AddStatus.ACCEPTED:
            encoded.append([result.status.value])
        else:
            encoded.append([result.status.value, list(result.conflicting_fields), event_row(result.event)])
    return frame([number, True, encoded, commits])


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
