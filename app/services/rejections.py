"""The fixed set of reasons an event (or an ingest request) is refused: the `reason` label of
telemetry_events_rejected_total and of the `event_rejected` log line. README lists them too."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Protocol

REJECTION_REASONS = MappingProxyType(
    {
        "body_too_large": "413: the request body is over request_max_bytes (Content-Length or counted as it streams)",
        "body_timeout": "408: the client stopped sending the body for request_body_timeout_s",
        "unsupported_media_type": "415: a POST body not declared as application/json",
        "malformed_json": "400: not strict JSON (syntax, invalid UTF-8, lone surrogate, NaN/Infinity, "
        "duplicate key, number out of range, nesting)",
        "invalid": "422: fails the request schema (missing or unknown field, wrong type, length, control character)",
        "batch_too_large": "413: more events in one batch than batch_max_events",
        "event_too_large": "422: one event serialised is over event_max_bytes",
        "metadata_too_deep": "422: metadata nested deeper than metadata_max_depth",
        "metadata_too_many_keys": "422: more than metadata_max_keys keys in all of metadata",
        "nul_character": "422: a NUL character in a field, a metadata key or a metadata value",
        "number_out_of_range": "422: an integer outside 64 bits or a float that is not finite",
        "timestamp_in_future": "422: timestamp more than timestamp_max_future_s ahead of the server clock, "
        "after clock-skew correction with sent_at",
        "timestamp_too_old": "422: timestamp or sent_at before timestamp_min",
        "timestamp_out_of_range": "422: a timestamp that does not exist in UTC (e.g. year 1 with a positive offset)",
        "conflict": "409: the event_id is stored with another payload",
        "unauthenticated": "401: ingest without a valid API key (keys configured)",
        "forbidden": "403: ingest with a key that lacks the ingest scope",
        "rate_limited": "429: ingest over the key's (or the client address's) rate limit",
        "decode_busy": "503: an SDK body read before its key is checked found no room left in "
        "sdk_decode_budget_bytes (Retry-After)",
    }
)


def known_reason(reason: str) -> str:
    """The reason itself when it is one of the fixed set; 'invalid' otherwise (the label set stays fixed)."""
    return reason if reason in REJECTION_REASONS else "invalid"


class RejectionMetrics(Protocol):
    def event_rejected(self, reason: str, count: int = 1) -> None: ...


class RejectionLog(Protocol):
    def info(self, event: str, **fields: Any) -> Any: ...


class Rejections:
    """Counts and logs each refusal once, never with the payload (it may hold personal data).

    One instance is shared by everything that refuses: the service, the body limit, the access guard and
    the error handlers, so a refusal is counted in one place whichever layer made it.
    """

    def __init__(self, metrics: RejectionMetrics, log: RejectionLog) -> None:
        self._metrics = metrics
        self._log = log

    def __call__(self, reason: str, count: int = 1, **fields: Any) -> None:
        self._metrics.event_rejected(reason, count)
        self._log.info("event_rejected", reason=reason, count=count, **fields)
