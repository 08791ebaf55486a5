"""One rejection vocabulary: the fixed set of reasons an event (or an ingest request) is refused, the
`reason` label of telemetry_events_rejected_total and of the `event_rejected` log line, and the one
object that counts and logs each refusal."""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol


class RejectionReason(StrEnum):
    """Why an event (or an ingest request) was refused: the only values the `reason` label takes."""

    BODY_TOO_LARGE = "body_too_large"
    BODY_TIMEOUT = "body_timeout"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    MALFORMED_JSON = "malformed_json"
    INVALID = "invalid"
    BATCH_TOO_LARGE = "batch_too_large"
    EVENT_TOO_LARGE = "event_too_large"
    METADATA_TOO_DEEP = "metadata_too_deep"
    METADATA_TOO_MANY_KEYS = "metadata_too_many_keys"
    NUL_CHARACTER = "nul_character"
    NUMBER_OUT_OF_RANGE = "number_out_of_range"
    TIMESTAMP_IN_FUTURE = "timestamp_in_future"
    TIMESTAMP_TOO_OLD = "timestamp_too_old"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    CONFLICT = "conflict"
    USER_ERASED = "user_erased"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"
    DECODE_BUSY = "decode_busy"


# What each reason means (README lists them too).
_R = RejectionReason
REJECTION_REASONS: MappingProxyType[RejectionReason, str] = MappingProxyType(
    {
        _R.BODY_TOO_LARGE: "413: the request body is over request_max_bytes (Content-Length or counted as it streams)",
        _R.BODY_TIMEOUT: "408: the client stopped sending the body for request_body_timeout_s",
        _R.UNSUPPORTED_MEDIA_TYPE: "415: a POST body not declared as application/json",
        _R.MALFORMED_JSON: "400: not strict JSON (syntax, invalid UTF-8, lone surrogate, NaN/Infinity, "
        "duplicate key, number out of range, nesting)",
        _R.INVALID: "422: fails the request schema (missing or unknown field, wrong type, length, control character)",
        _R.BATCH_TOO_LARGE: "413: more events in one batch than batch_max_events",
        _R.EVENT_TOO_LARGE: "422: one event serialised is over event_max_bytes",
        _R.METADATA_TOO_DEEP: "422: metadata nested deeper than metadata_max_depth",
        _R.METADATA_TOO_MANY_KEYS: "422: more than metadata_max_keys keys in all of metadata",
        _R.NUL_CHARACTER: "422: a NUL character in a field, a metadata key or a metadata value",
        _R.NUMBER_OUT_OF_RANGE: "422: an integer outside 64 bits or a float that is not finite",
        _R.TIMESTAMP_IN_FUTURE: "422: timestamp more than timestamp_max_future_s ahead of the server clock, "
        "after clock-skew correction with sent_at",
        _R.TIMESTAMP_TOO_OLD: "422: timestamp or sent_at before timestamp_min",
        _R.TIMESTAMP_OUT_OF_RANGE: "422: a timestamp that does not exist in UTC (e.g. year 1 with a positive offset)",
        _R.CONFLICT: "409: the event_id is stored with another payload",
        _R.USER_ERASED: "422: the user was erased with suppression: later events of that user_id are refused",
        _R.UNAUTHENTICATED: "401: ingest without a valid API key (keys configured)",
        _R.FORBIDDEN: "403: ingest with a key that lacks the ingest scope",
        _R.RATE_LIMITED: "429: ingest over the key's (or the client address's) rate limit",
        _R.DECODE_BUSY: "503: an SDK body read before its key is checked found no room left in "
        "sdk_decode_budget_bytes (Retry-After)",
    }
)


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

    def __call__(self, reason: RejectionReason, count: int = 1, **fields: Any) -> None:
        self._metrics.event_rejected(reason, count)
        self._log.info("event_rejected", reason=reason.value, count=count, **fields)
