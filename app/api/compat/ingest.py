"""What the SDK routes share: parse the body, map each message, record the batch, say what was rejected."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app.api.compat.body import BodyTooLarge, UnreadableBody
from app.api.compat.inflate import BodyDecoder, BudgetExhausted, Reservation, inflate, parsed_size_estimate, read_wire
from app.api.compat.sdk_mapping import Acknowledged, UnmappableMessage
from app.api.problems import ApiProblem
from app.api.schemas import JsonBody
from app.api.strict_json import StrictJsonError, parse_strict_json
from app.json_codec import dump_json
from app.models import InvalidEvent
from app.repository.port import AddResult, AddStatus
from app.services.event_limits import nests_deeper_than
from app.services.event_service import EventDraft, EventService, Refusal
from app.services.rejections import RejectionReason, Rejections

ToDraft = Callable[[Any], EventDraft | Acknowledged]
_DETAIL_REASONS = 5


@dataclass(slots=True)
class IngestReport:
    total: int = 0
    accepted: int = 0
    duplicate: int = 0
    ignored: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "ignored": self.ignored,
            "rejected": self.rejected,
        }


class SdkProblem(ApiProblem):
    """A problem-details error that also carries the `code` and `message` keys SDKs log (Segment reads them)."""

    def __init__(
        self, status: int, slug: str, detail: str, headers: Mapping[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(status, slug, detail, headers, code=slug, message=detail, **extra)


async def read_json_body(
    request: Request,
    decoder: BodyDecoder,
    *,
    limit: int,
    too_large_status: int,
    key_checked: bool,
    rejections: Rejections,
    sdk: str,
) -> Any:
    """The body inflated (bounded) and parsed on a decoding thread; each failure is a problem with its status.

    key_checked False: the key is in the body, so what the body holds comes out of the shared decoding budget
    until the request ends."""
    encoding = request.headers.get("content-encoding", "")
    reservation = None if key_checked else decoder.reservation()
    try:
        with body_problems(too_large_status, rejections, sdk):
            wire = await read_wire(request, limit=limit, encoding=encoding, reservation=reservation)
            return await decoder.run(reservation, _inflate_and_parse, wire, encoding, limit, reservation)
    finally:
        if reservation is not None:
            reservation.release()


def _inflate_and_parse(wire: bytes, encoding: str, limit: int, reservation: Reservation | None) -> Any:
    raw = inflate(wire, encoding, limit=limit, reservation=reservation)
    del wire
    if reservation is not None:
        reservation.take(parsed_size_estimate(raw))  # the text and the value the parser makes of it
    return parse_json(raw)


@contextmanager
def body_problems(too_large_status: int, rejections: Rejections, sdk: str) -> Iterator[None]:
    """The body readers' errors as problems: too large, unreadable, no room in the decoding budget."""
    try:
        yield
    except BodyTooLarge as exc:
        raise SdkProblem(too_large_status, "payload-too-large", str(exc), limit_bytes=exc.limit) from exc
    except UnreadableBody as exc:
        status = 415 if "not supported" in str(exc) else 400
        raise SdkProblem(status, "unreadable-body", str(exc)) from exc
    except BudgetExhausted as exc:
        rejections(RejectionReason.DECODE_BUSY, sdk=sdk)
        raise SdkProblem(
            503,
            "busy",
            "Too many request bodies are being read before their key is checked; retry shortly.",
            headers={"Retry-After": "1"},
        ) from exc


def parse_json(raw: bytes) -> Any:
    """Strict JSON, as on the JSON API: NaN, duplicate keys, lone surrogates or invalid UTF-8 are a 400."""
    if not raw.strip():
        raise SdkProblem(400, "malformed-json", "The request body is empty.")
    try:
        return parse_strict_json(raw)
    except StrictJsonError as exc:
        raise SdkProblem(400, "malformed-json", f"The request body is not valid JSON: {exc}") from exc


def _message_id(message: Any, id_field: str) -> str | None:
    value = message.get(id_field) if isinstance(message, dict) else None
    return str(value)[:200] if isinstance(value, str | int) and not isinstance(value, bool) else None


async def ingest_messages(
    service: EventService,
    rejections: Rejections,
    messages: Sequence[Any],
    to_draft: ToDraft,
    *,
    id_field: str,
    max_event_bytes: int,
    max_events: int,
    max_metadata_depth: int,
    too_many_status: int,
    sdk: str,
) -> IngestReport:
    """Map every message, store the mappable ones in one group commit, report each refusal by index."""
    if len(messages) > max_events:
        rejections(RejectionReason.BATCH_TOO_LARGE, len(messages), sdk=sdk)
        raise SdkProblem(
            too_many_status,
            "batch-too-large",
            f"{len(messages)} messages in one request; the most is {max_events} (TELEMETRY_BATCH_MAX_EVENTS)",
        )
    _refuse_deep_nesting(rejections, messages, max_metadata_depth, sdk)
    items = [_draft_or_refusal(message, to_draft, max_event_bytes) for message in messages]
    outcomes: list[AddResult | InvalidEvent | Acknowledged | Refusal] = await service.record_batch(
        items, resend_may_change_sent_at=True, sdk=sdk
    )
    report = IngestReport(total=len(messages))
    for index, (message, outcome) in enumerate(zip(messages, outcomes, strict=True)):
        refused = _refusal_text(outcome)
        if refused is not None:
            report.rejected.append({"index": index, "id": _message_id(message, id_field), "reason": refused})
        elif isinstance(outcome, Acknowledged):
            report.ignored += 1
        elif isinstance(outcome, AddResult) and outcome.status is AddStatus.ACCEPTED:
            report.accepted += 1
        else:
            report.duplicate += 1
    return report


def _draft_or_refusal(message: Any, to_draft: ToDraft, max_event_bytes: int) -> EventDraft | Acknowledged | Refusal:
    size = len(dump_json(message).encode())
    if size > max_event_bytes:
        return Refusal(RejectionReason.EVENT_TOO_LARGE, f"the event is {size} bytes; the most is {max_event_bytes}")
    try:
        return to_draft(message)
    except UnmappableMessage as exc:
        return Refusal(RejectionReason.INVALID, str(exc))


def _refusal_text(outcome: AddResult | InvalidEvent | Acknowledged | Refusal) -> str | None:
    """Why a message was not stored, or None when it was stored (or acknowledged)."""
    if isinstance(outcome, Refusal):
        return str(outcome.detail)
    if isinstance(outcome, InvalidEvent):  # outside the service's event limits (counted there)
        return str(outcome)
    if isinstance(outcome, AddResult) and outcome.status is AddStatus.CONFLICT:
        fields = ", ".join(outcome.conflicting_fields)
        return f"event_id {outcome.event.event_id} is already stored with different {fields}"
    return None


def _refuse_deep_nesting(rejections: Rejections, messages: Sequence[Any], max_depth: int, sdk: str) -> None:
    """422, as the JSON API answers, for a message whose properties nest past the metadata depth limit.

    Checked before anything walks the message recursively (its size as JSON, the mapping): a message one
    level above its properties may hold one level more than metadata may.
    """
    for index, message in enumerate(messages):
        if nests_deeper_than(message, max_depth + 1):
            rejections(RejectionReason.METADATA_TOO_DEEP, sdk=sdk)
            raise SdkProblem(
                422,
                "invalid-event",
                f"message #{index}: metadata is nested deeper than {max_depth} levels (TELEMETRY_METADATA_MAX_DEPTH)",
                reason="metadata_too_deep",
                index=index,
            )


def report_response(report: IngestReport, success: dict[str, Any]) -> Response:
    """200 when nothing was refused; otherwise 400 naming each refused message (the rest is stored)."""
    if not report.rejected:
        return JsonBody({**success, **report.counts()})
    stored = report.accepted + report.duplicate
    reasons = "; ".join(f"#{r['index']}: {r['reason']}" for r in report.rejected[:_DETAIL_REASONS])
    more = len(report.rejected) - _DETAIL_REASONS
    detail = (
        f"{len(report.rejected)} of {report.total} events rejected ({stored} stored, {report.ignored} acknowledged "
        f"without recording): {reasons}" + (f"; and {more} more" if more > 0 else "")
    )
    raise SdkProblem(400, "events-rejected", detail, **report.counts())
