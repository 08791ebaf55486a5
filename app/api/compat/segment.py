"""Segment HTTP Tracking API (also what RudderStack's SDKs speak): point an SDK's host here, change nothing else.

POST /v1/track, /v1/page, /v1/screen take one message; /v1/batch (and /v1/import) take {"batch": [...]};
analytics.js's short paths (/v1/t, /v1/p, /v1/s, /v1/i, /v1/g, /v1/a, /v1/b) are the same routes.
/v1/identify, /v1/group, /v1/alias are answered with success and not recorded. The write key comes as the
HTTP Basic user (empty password) or as `writeKey` in the body. Limits as Segment documents them: 32 KB an
event, 500 KB a batch, a larger body is a 400. Unlike Segment, a refused message is never a bare 200: the
answer is a 400 listing each refused message by index (the valid ones of the same request are stored).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.compat.ingest import SdkProblem, ingest_messages, read_json_body, report_response
from app.api.compat.keys import check_ingest_key, checked_before_body
from app.api.compat.sdk_mapping import segment_message_to_draft
from app.api.deps import DecoderDep, ServiceDep, SettingsDep, runtime_of
from app.api.policy import SEGMENT_INGEST
from app.api.problems import problem_responses

MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024

# Every route here takes its write key from the body or HTTP Basic and is open to CORS: one policy.
router = APIRouter(prefix="/v1", tags=["segment-compatible"], dependencies=[SEGMENT_INGEST])

_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}}
_RESPONSES = problem_responses(400, 401, 403, 413, 415, 422, 429, 503)


async def _ingest(
    request: Request, service: ServiceDep, settings: SettingsDep, decoder: DecoderDep, kind: str | None
) -> Response:
    key_checked = checked_before_body(request)  # the Basic user (or a bearer key), by the edge
    body = await read_json_body(
        request,
        decoder,
        limit=MAX_EVENT_BYTES if kind else MAX_BATCH_BYTES,
        too_large_status=400,
        key_checked=key_checked,
        rejections=runtime_of(request).rejections,
        sdk="segment",
    )
    if not isinstance(body, dict):
        raise SdkProblem(400, "invalid-body", "The body must be a JSON object.")
    if not key_checked:
        write_key = body.get("writeKey")
        check_ingest_key(request, write_key if isinstance(write_key, str) else None)
    if kind is None:
        messages = body.get("batch")
        if not isinstance(messages, list):
            raise SdkProblem(400, "invalid-body", "`batch` must be an array of messages.")
    else:
        messages = [body]
    to_draft = partial(
        segment_message_to_draft,
        default_type=kind,
        batch_sent_at=body.get("sentAt") if kind is None else None,
        source_override=settings.segment_source,
    )
    report = await ingest_messages(
        service,
        runtime_of(request).rejections,
        messages,
        to_draft,
        id_field="messageId",
        max_event_bytes=MAX_EVENT_BYTES,
        max_events=settings.batch_max_events,
        max_metadata_depth=settings.metadata_max_depth,
        too_many_status=400,
        sdk="segment",
    )
    return report_response(report, {"success": True})


def _route(kind: str) -> Any:
    async def endpoint(request: Request, service: ServiceDep, settings: SettingsDep, decoder: DecoderDep) -> Response:
        return await _ingest(request, service, settings, decoder, kind)

    endpoint.__name__ = f"segment_{kind}"
    return endpoint


# analytics.js (analytics-next) posts each call to the first letter of its type: /v1/t, /v1/p, ... and /v1/b.
for _kind in ("track", "page", "screen", "identify", "group", "alias"):
    recorded = _kind in ("track", "page", "screen")
    for _path, _how in ((f"/{_kind}", ""), (f"/{_kind[0]}", ", analytics.js short path")):
        router.add_api_route(
            _path,
            _route(_kind),
            methods=["POST"],
            summary=f"Segment {_kind}" + ("" if recorded else " (acknowledged, not recorded)") + _how,
            openapi_extra=_BODY,
            responses=_RESPONSES,
        )


@router.post("/batch", summary="Segment batch", openapi_extra=_BODY, responses=_RESPONSES)
@router.post("/import", summary="Segment import (alias of batch)", openapi_extra=_BODY, responses=_RESPONSES)
@router.post("/b", summary="Segment batch, analytics.js short path", openapi_extra=_BODY, responses=_RESPONSES)
async def segment_batch(request: Request, service: ServiceDep, settings: SettingsDep, decoder: DecoderDep) -> Response:
    return await _ingest(request, service, settings, decoder, None)
