"""GET /v1/events/export: every event matching the filters of GET /v1/events, streamed, no row cap."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import StreamingResponse

from app.api.deps import ACCESS_PROBLEMS, FilterDep, ReadsDep, ServiceDep
from app.api.policy import READ
from app.api.problems import problem_responses
from app.export_format import MEDIA_TYPES, ExportFormat, export_chunks

router = APIRouter(prefix="/v1", tags=["events"])


@router.get(
    "/events/export",
    summary="Export every matching event as NDJSON or CSV, streamed in (timestamp, event_id) order",
    response_class=StreamingResponse,
    dependencies=[READ],  # the same scope as reading events one page at a time
    responses={
        200: {"content": {"application/x-ndjson": {}, "text/csv": {}}, "description": "The events, streamed"},
        **ACCESS_PROBLEMS,
        **problem_responses(422),
    },
)
async def export_events(
    service: ServiceDep,
    reads: ReadsDep,
    event_filter: FilterDep,
    format: Annotated[ExportFormat, Query(description="ndjson (one JSON event a line) or csv")] = "ndjson",
) -> StreamingResponse:
    # Each chunk is pulled on a read thread in a read turn, so the event loop never waits on the store,
    # and only one page of events (plus one chunk of bytes) is in memory at a time.
    chunks = export_chunks(service.export_events(event_filter), format)
    return StreamingResponse(
        reads.stream(chunks),
        media_type=MEDIA_TYPES[format],
        headers={"content-disposition": f'attachment; filename="events.{format}"'},
    )
