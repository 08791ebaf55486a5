"""Event routes: ingest one, ingest a batch, read one, list with keyset pages, stats."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request
from pydantic import TypeAdapter, ValidationError
from starlette.responses import Response

from app.api.deps import ACCESS_PROBLEMS, BODY_PROBLEMS, FilterDep, ReadsDep, ServiceDep, SettingsDep, runtime_of
from app.api.lean_ingest import lean_answer
from app.api.policy import INGEST_JSON_POLICY, READ, declare
from app.api.problems import ApiProblem, field_errors, problem_responses
from app.api.schemas import (
    BatchIn,
    BatchOut,
    EventIn,
    EventOut,
    EventPageOut,
    InvalidCursor,
    JsonBody,
    StatsOut,
    decode_cursor,
    encode_cursor,
    event_json,
)
from app.api.strict_json import JsonRoute
from app.bootstrap import Runtime
from app.models import InvalidEvent
from app.repository.port import AddResult, AddStatus, EventQuery, StatsQuery
from app.services.event_service import EventDraft, Refusal
from app.services.rejections import RejectionReason

# JsonRoute: strict JSON bodies (400). Key, scope, body limit and media type: the edge (RoutePolicy).
router = APIRouter(prefix="/v1", tags=["events"], route_class=JsonRoute)
_event_adapter: TypeAdapter[EventIn] = TypeAdapter(EventIn)
_batch_adapter: TypeAdapter[BatchIn] = TypeAdapter(BatchIn)


async def _record_one(runtime: Runtime, event: EventIn) -> Response:
    result = await runtime.service.record_event(event.to_draft())
    status = 201 if result.status is AddStatus.ACCEPTED else 200
    return JsonBody(event_json(result.event), status_code=status)


async def _record_many(runtime: Runtime, batch: BatchIn) -> Response:
    service, settings = runtime.service, runtime.settings
    if len(batch.events) > settings.batch_max_events:
        runtime.rejections(RejectionReason.BATCH_TOO_LARGE, len(batch.events))
        raise ApiProblem(
            413,
            "batch-too-large",
            f"{len(batch.events)} events in one batch; the most is {settings.batch_max_events}",
        )
    outcomes = await service.record_batch([_draft_or_refusal(item) for item in batch.events])
    results = [
        _batch_result(index, item, outcome)
        for index, (item, outcome) in enumerate(zip(batch.events, outcomes, strict=True))
    ]
    counts = dict.fromkeys(("accepted", "duplicate", "conflict", "invalid"), 0)
    for r in results:
        counts[r["status"]] += 1
    return JsonBody({**counts, "results": results})


async def _lean_record_event(runtime: Runtime, body: bytes) -> Response:
    return await lean_answer(runtime, body, _event_adapter, _record_one)


async def _lean_record_batch(runtime: Runtime, body: bytes) -> Response:
    return await lean_answer(runtime, body, _batch_adapter, _record_many)


@router.post(
    "/events",
    status_code=201,
    response_model=EventOut,
    summary="Record one user action",
    dependencies=[declare(replace(INGEST_JSON_POLICY, lean=_lean_record_event))],
    responses={
        200: {"model": EventOut, "description": "Already stored with this event_id and the same payload"},
        **ACCESS_PROBLEMS,
        **BODY_PROBLEMS,
        **problem_responses(409, 503),
    },
)
async def record_event(event: EventIn, request: Request) -> Response:
    # The ingest routes read the runtime directly: a Depends() costs every request a sub-dependency
    # resolution, which the profile showed as FastAPI's largest per-request item.
    return await _record_one(runtime_of(request), event)


@router.post(
    "/events/batch",
    response_model=BatchOut,
    summary="Record many user actions; each item is accepted or refused on its own",
    dependencies=[declare(replace(INGEST_JSON_POLICY, lean=_lean_record_batch))],
    responses={**ACCESS_PROBLEMS, **BODY_PROBLEMS, **problem_responses(503)},
)
async def record_batch(batch: BatchIn, request: Request) -> Response:
    return await _record_many(runtime_of(request), batch)


def _draft_or_refusal(item: Any) -> EventDraft | Refusal:
    try:
        return _event_adapter.validate_python(item).to_draft()
    except ValidationError as exc:
        return Refusal(RejectionReason.INVALID, field_errors(exc.errors()))


def _batch_result(index: int, item: Any, outcome: AddResult | InvalidEvent | Refusal) -> dict[str, Any]:
    if isinstance(outcome, AddResult):
        return {"index": index, "event_id": str(outcome.event.event_id), "status": outcome.status.value}
    if isinstance(outcome, InvalidEvent):
        errors = [{"field": outcome.field or "", "message": str(outcome), "type": outcome.reason}]
    else:
        errors = outcome.detail
    raw_id = item.get("event_id") if isinstance(item, dict) else None
    return {"index": index, "event_id": _uuid_or_none(raw_id), "status": "invalid", "errors": errors}


def _uuid_or_none(value: Any) -> str | None:
    try:
        return str(UUID(value)) if isinstance(value, str) else None
    except ValueError:
        return None


@router.get(
    "/events/{event_id:uuid}",  # not a UUID: no such resource (404); and GET /v1/events/batch is a 405
    response_model=EventOut,
    summary="Read one event",
    dependencies=[READ],
    responses={**ACCESS_PROBLEMS, **problem_responses(404, 503)},
)
async def get_event(event_id: UUID, service: ServiceDep, reads: ReadsDep) -> Response:
    return JsonBody(event_json(await reads.run(service.get_event, event_id)))


@router.get(
    "/events",
    response_model=EventPageOut,
    summary="List events in (timestamp, event_id) order, oldest or newest first, a keyset page at a time",
    dependencies=[READ],
    responses={**ACCESS_PROBLEMS, **problem_responses(400, 422, 503)},
)
async def list_events(
    service: ServiceDep,
    reads: ReadsDep,
    event_filter: FilterDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        str | None,
        Query(
            max_length=200,
            description="next_cursor of a previous page: a position; the page continues from it in `order`, "
            "so a cursor from an ascending page also pages back with order=desc",
        ),
    ] = None,
    order: Annotated[Literal["asc", "desc"], Query(description="asc: oldest first; desc: newest first")] = "asc",
) -> Response:
    try:
        after = decode_cursor(cursor) if cursor else None
    except InvalidCursor as exc:
        raise ApiProblem(400, "invalid-cursor", str(exc)) from exc
    page = await reads.run(service.list_events, EventQuery(event_filter, limit, after, order))
    return JsonBody({"items": [event_json(e) for e in page.items], "next_cursor": encode_cursor(page.next_cursor)})


@router.get(
    "/stats",
    response_model=StatsOut,
    summary="Event counts by action, by source and by time bucket over a time range",
    dependencies=[READ],
    responses={**ACCESS_PROBLEMS, **problem_responses(422, 503)},
)
async def stats(
    service: ServiceDep,
    reads: ReadsDep,
    settings: SettingsDep,
    event_filter: FilterDep,
    bucket: Literal["hour", "day"] = "hour",
) -> Response:
    # The store stops after limit + 1 buckets, and the service refuses more than the limit (422).
    query = StatsQuery(event_filter, bucket, max_buckets=settings.stats_max_buckets)
    result = await reads.run(service.stats, query)
    return JsonBody(
        {
            "total": result.total,
            "by_action": result.by_action,
            "by_source": result.by_source,
            "bucket": bucket,
            "by_bucket": [{"start": _iso(start), "count": n} for start, n in result.by_bucket],
        }
    )


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
