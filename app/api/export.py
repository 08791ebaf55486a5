"""GET /v1/events/export: every event matching the filters of GET /v1/events, streamed, no row cap."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from starlette.responses import StreamingResponse

from app.api.deps import ACCESS_PROBLEMS, FilterDep, ReadsDep, ServiceDep
from app.api.policy import READ
from app.api.problems import problem_responses
from app.export_format import MEDIA_TYPES, ExportFormat, export_chunks

router = APIRouter(prefix="/v1", tags=["events"])


@router.get(
    "/events/export",
    summary="Export every matching event as NDJSON, CSV or Parquet, streamed in (timestamp, event_id) order",
    response_class=StreamingResponse,
    dependencies=[READ],  # the same scope as reading events one page at a time
    responses={
        200: {
            "content": {"application/x-ndjson": {}, "text/csv": {}, "application/vnd.apache.parquet": {}},
            "description": "The events, streamed",
        },
        **ACCESS_PROBLEMS,
        **problem_responses(422),
    },
)
async def export_events(
    service: ServiceDep,
    reads: ReadsDep,
    event_filter: FilterDep,
    format: Annotated[
        ExportFormat | Literal["parquet"],
        Query(description="ndjson (one JSON event a line), csv, or parquet (row groups of typed columns)"),
    ] = "ndjson",
) -> StreamingResponse:
    if format == "parquet":
        # Imported on first use: pyarrow is large, and most deployments never export Parquet over HTTP.
        from app.export_parquet import MEDIA_TYPE, ROW_GROUP_ROWS, parquet_chunks

        # One row group at a time is built and sent: memory stays at one row group however many events match.
        # Each is pulled in a read turn of its own, like the other formats' chunks.
        return StreamingResponse(
            reads.stream(parquet_chunks(service.export_rows(event_filter, ROW_GROUP_ROWS))),
            media_type=MEDIA_TYPE,
            headers={"content-disposition": 'attachment; filename="events.parquet"'},
        )
    # Each chunk is pulled on a read thread in a read turn, so the event loop never waits on the store,
    # and only one page of events (plus one chunk of bytes) is in memory at a time.
    chunks = export_chunks(service.export_events(event_filter), format)
    return StreamingResponse(
        reads.stream(chunks),
        media_type=MEDIA_TYPES[format],
        headers={"content-disposition": f'attachment; filename="events.{format}"'},
    )
