"""PostHog capture API: POST /batch/, /capture/, /e/, /i/v0/e/ as PostHog's SDKs send them.

Bodies: JSON, gzip (Content-Encoding: gzip, or ?compression=gzip-js as posthog-js sends it), deflate, or
form-encoded `data=<base64 JSON>`. PostHog's lz64 form is refused with 415: no current SDK of ours to test
against sends it (the Python SDK never did) and gzip replaced it in posthog-js. The decompressed body is
capped (TELEMETRY_POSTHOG_MAX_BODY_BYTES): past it, 413, without inflating further.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.compat.inflate import BodyDecoder, Reservation, inflate, parsed_size_estimate, read_wire
from app.api.compat.ingest import SdkProblem, body_problems, ingest_messages, parse_json, report_response
from app.api.compat.keys import check_ingest_key, checked_before_body
from app.api.compat.sdk_mapping import posthog_event_to_draft
from app.api.deps import DecoderDep, ServiceDep, SettingsDep, runtime_of
from app.api.policy import POSTHOG_INGEST
from app.api.problems import problem_responses
from app.config import Settings
from app.services.event_service import EventService
from app.services.rejections import Rejections

# PostHog's server refuses events over 1 MB; its Python SDK stops at 900 KiB.
MAX_EVENT_BYTES = 1024 * 1024

# Key in the body, open to CORS, and a body limit of its own (decompressed size capped): one policy.
router = APIRouter(tags=["posthog-compatible"], dependencies=[POSTHOG_INGEST])

_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {}}}}}
_RESPONSES = problem_responses(400, 401, 403, 413, 415, 422, 429, 503)


def _compression(request: Request, form: dict[str, list[str]] | None = None) -> str:
    value = request.query_params.get("compression") or (form or {}).get("compression", [""])[0]
    return value.strip().lower()


def _refuse_lz64(compression: str) -> None:
    if compression == "lz64":
        raise SdkProblem(415, "unsupported-compression", "lz64 bodies are not supported; send gzip (gzip-js).")


async def _events_body(
    request: Request, limit: int, decoder: BodyDecoder, reservation: Reservation | None, rejections: Rejections
) -> Any:
    compression = _compression(request)
    _refuse_lz64(compression)
    encoding = request.headers.get("content-encoding", "")
    if compression in ("gzip", "gzip-js") and encoding.strip().lower() in ("", "identity"):
        encoding = "gzip"
    form = request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
    with body_problems(413, rejections, "posthog"):
        wire = await read_wire(request, limit=limit, encoding=encoding, reservation=reservation)
        return await decoder.run(reservation, _decode, wire, encoding, form, compression, limit, reservation)


def _decode(
    wire: bytes, encoding: str, form: bool, compression: str, limit: int, reservation: Reservation | None
) -> Any:
    """On a decoding thread: inflate, unwrap posthog-js's form, parse; every byte held is budgeted."""
    raw = inflate(wire, encoding, limit=limit, reservation=reservation)
    del wire
    if form:
        raw = _form_data(raw, compression, limit, reservation)
    if reservation is not None:
        reservation.take(parsed_size_estimate(raw))  # the text and the value the parser makes of it
    return parse_json(raw)


def _form_data(raw: bytes, query_compression: str, limit: int, reservation: Reservation | None) -> bytes:
    """posthog-js's form body: data=<base64 of the JSON, or of its gzip when compression=gzip-js>."""
    try:
        form = parse_qs(raw.decode("latin-1"), max_num_fields=10)
    except ValueError as exc:
        raise SdkProblem(400, "unreadable-body", "the form has more fields than data and compression") from exc
    compression = query_compression or form.get("compression", [""])[0].strip().lower()
    _refuse_lz64(compression)
    # A '+' not percent-encoded reads as a space in a form; the URL-safe alphabet is accepted too.
    data = form.get("data", [""])[0].strip().replace(" ", "+").replace("-", "+").replace("_", "/")
    try:
        decoded = base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SdkProblem(400, "unreadable-body", "form field `data` is not base64") from exc
    if compression not in ("gzip", "gzip-js"):
        return decoded
    return inflate(decoded, "gzip", limit=limit, reservation=reservation)


def _key(body: Any, events: list[Any]) -> str | None:
    candidates: list[Any] = []
    if isinstance(body, dict):
        candidates += [body.get("api_key"), body.get("token")]
    if events and isinstance(events[0], dict):
        properties = events[0].get("properties")
        candidates += [events[0].get("api_key"), properties.get("token") if isinstance(properties, dict) else None]
    return next((c for c in candidates if isinstance(c, str) and c), None)


def _batch_sent_at(body: Any, request: Request) -> Any:
    if isinstance(body, dict) and body.get("sent_at"):
        return body["sent_at"]
    millis = request.query_params.get("_", "")  # posthog-js: the send time, ms since the epoch
    if not millis:
        return None
    try:
        # isascii: str.isdigit() also takes digits int() refuses, such as '²'.
        if not (millis.isascii() and millis.isdigit()):
            raise ValueError(millis)
        return datetime.fromtimestamp(int(millis) / 1000, UTC).isoformat()
    except (ValueError, OverflowError, OSError) as exc:
        raise SdkProblem(
            400, "invalid-query", "query parameter `_` must be the send time in milliseconds since 1970 (UTC)"
        ) from exc


async def _capture(request: Request, service: ServiceDep, settings: SettingsDep, decoder: DecoderDep) -> Response:
    # Without a key checked before the body (by the edge), the key is in the body: until it is checked, what
    # the body holds comes out of the shared budget.
    reservation = None if checked_before_body(request) else decoder.reservation()
    try:
        return await _record(request, service, settings, decoder, reservation)
    finally:
        if reservation is not None:
            reservation.release()


async def _record(
    request: Request,
    service: EventService,
    settings: Settings,
    decoder: BodyDecoder,
    reservation: Reservation | None,
) -> Response:
    body = await _events_body(
        request, settings.posthog_max_body_bytes, decoder, reservation, runtime_of(request).rejections
    )
    if isinstance(body, list):
        events = body
    elif isinstance(body, dict) and isinstance(body.get("batch"), list):
        events = body["batch"]
    elif isinstance(body, dict) and "event" in body:
        events = [body]
    else:
        raise SdkProblem(400, "invalid-body", 'Send one event, an array of events, or {"batch": [...]}.')
    if reservation is not None:
        check_ingest_key(request, _key(body, events))
    to_draft = partial(
        posthog_event_to_draft,
        received_at=service.now(),
        batch_sent_at=_batch_sent_at(body, request),
        source_override=settings.posthog_source,
    )
    report = await ingest_messages(
        service,
        runtime_of(request).rejections,
        events,
        to_draft,
        id_field="uuid",
        max_event_bytes=MAX_EVENT_BYTES,
        max_events=settings.batch_max_events,
        max_metadata_depth=settings.metadata_max_depth,
        too_many_status=413,
        sdk="posthog",
    )
    return report_response(report, {"status": 1})


for _path in ("/batch/", "/capture/", "/e/", "/i/v0/e/"):
    router.add_api_route(
        _path,
        _capture,
        methods=["POST"],
        name=f"posthog_capture_{_path.strip('/').replace('/', '_')}",
        summary=f"PostHog capture ({_path})",
        openapi_extra=_BODY,
        responses=_RESPONSES,
    )
