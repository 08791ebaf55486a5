"""Operational routes: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS
from starlette.responses import Response

from app.api.deps import ServiceDep, runtime_of
from app.api.problems import RETRY_AFTER_S, problem_response, problem_responses
from app.api.schemas import JsonBody
from app.api.security import authorize, bearer_token

router = APIRouter(tags=["operations"])
_RETRY = {"Retry-After": str(RETRY_AFTER_S)}


@router.get("/healthz", summary="Alive: the process answers")
async def healthz() -> Response:
    return JsonBody({"status": "ok"})


@router.get("/readyz", summary="Ready: the database is reachable and writable", responses=problem_responses(503))
def readyz(request: Request, service: ServiceDep) -> Response:
    writer = runtime_of(request).writer
    if not writer.alive:
        return problem_response(503, "The writer is stopped (shutting down).", slug="not-ready", headers=_RETRY)
    try:
        service.check_ready()
    except Exception as exc:  # any failure to take a write lock means "not ready", with the reason
        return problem_response(
            503, f"Database not writable: {type(exc).__name__}: {exc}", slug="not-ready", headers=_RETRY
        )
    # The lock can be taken on a full disk: the writer's own last commit says whether writes go through.
    failure = writer.recent_failure()
    if failure is not None:
        return problem_response(
            503, f"Writes are failing: the last commit failed: {failure}", slug="not-ready", headers=_RETRY
        )
    return JsonBody({"status": "ready"})


async def metrics_access(request: Request) -> None:
    """/metrics is open unless TELEMETRY_METRICS_REQUIRE_KEY is set: then a key of scope read (or admin)."""
    if runtime_of(request).settings.metrics_require_key:
        authorize(request, bearer_token(request), "read")


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    response_class=Response,
    dependencies=[Depends(metrics_access)],
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"},
        **problem_responses(401, 403, 429),
    },
)
def metrics(request: Request) -> Response:
    # Exemplars exist only in OpenMetrics: served when tracing is on and the scraper asks for it.
    runtime = runtime_of(request)
    wants_openmetrics = "application/openmetrics-text" in request.headers.get("accept", "")
    if wants_openmetrics and runtime.settings.tracing_enabled:
        return Response(runtime.metrics.exposition(openmetrics_format=True), media_type=OPENMETRICS)
    return Response(runtime.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
