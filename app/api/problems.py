"""RFC 9457 problem details: every error the API answers has this one shape, mapped here in one place."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from app.json_codec import dump_json
from app.models import DomainError, InvalidEvent
from app.repository.group_commit import WriteQueueFull, WriterClosed
from app.repository.port import StorageError, StorageUnavailable
from app.services.erasure import UserErased
from app.services.event_service import EventConflict, EventNotFound, TooManyBuckets
from app.services.rejections import RejectionReason, Rejections

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_S = 1


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the offending field, e.g. 'events.3.timestamp'")
    message: str
    type: str


class Problem(BaseModel):
    """application/problem+json (RFC 9457)."""

    type: str = Field(description="A URI naming the kind of problem")
    title: str
    status: int
    detail: str
    instance: str | None = None
    reason: str | None = Field(default=None, description="Why an event was refused (one of a fixed set)")
    errors: list[FieldError] | None = None


class ApiProblem(Exception):
    """Raised by routes for an error with a status of its own (400 bad cursor, 413 batch too large...)."""

    def __init__(
        self, status: int, slug: str, detail: str, headers: Mapping[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra


def problem_response(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    phrase = HTTPStatus(status).phrase
    body: dict[str, Any] = {
        "type": f"urn:telemetry:problem:{slug}" if slug else "about:blank",
        "title": phrase,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return Response(dump_json(body), status_code=status, headers=dict(headers or {}), media_type=PROBLEM_JSON)


def api_problem_response(exc: ApiProblem) -> Response:
    return problem_response(exc.status, exc.detail, slug=exc.slug, headers=exc.headers, **exc.extra)


def field_errors(errors: Sequence[Any], prefix: Sequence[str | int] = ()) -> list[dict[str, str]]:
    """Pydantic errors as FieldError dicts, without the rejected input (it may hold personal data)."""
    out = []
    for err in errors:
        loc = [*prefix, *[p for p in err.get("loc", ()) if p != "body"]]
        out.append({"field": ".".join(str(p) for p in loc), "message": str(err.get("msg")), "type": err.get("type")})
    return out


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries, so the schema documents every status a route can return."""
    return {s: {"model": Problem, "description": HTTPStatus(s).phrase, "content": {PROBLEM_JSON: {}}} for s in statuses}


_DOMAIN_STATUS: dict[type[DomainError], tuple[int, str]] = {
    EventNotFound: (404, "event-not-found"),
    EventConflict: (409, "event-conflict"),
    UserErased: (422, "user-erased"),  # before InvalidEvent, its base
    InvalidEvent: (422, "invalid-event"),
    TooManyBuckets: (422, "too-many-buckets"),
    WriteQueueFull: (503, "write-queue-full"),
    StorageUnavailable: (503, "storage-unavailable"),
    # A store failing a call for a reason of its own is not the client's doing, and not a crash of ours.
    StorageError: (503, "storage-error"),
    WriterClosed: (503, "shutting-down"),
}


def validation_problem(errors: Sequence[Any], rejections: Rejections | None) -> Response:
    """The 400 (malformed JSON) or 422 for a request's validation errors, as FastAPI reports them (locations
    under "body", "query"...); counted by `rejections` when given (a refused ingest request, not a bad query)."""
    invalid_json = [e for e in errors if e.get("type") == "json_invalid"]
    if invalid_json:
        if rejections is not None:
            rejections(RejectionReason.MALFORMED_JSON)
        return malformed_json_problem((invalid_json[0].get("ctx") or {}).get("error"))
    if rejections is not None:
        rejections(RejectionReason.INVALID)
    fields = field_errors(errors)
    detail = "; ".join(f"{f['field'] or 'request'}: {f['message']}" for f in fields[:5])
    return problem_response(422, f"Validation failed: {detail}", slug="validation-error", errors=fields)


def malformed_json_problem(why: str | None) -> Response:
    detail = f"The request body is not valid JSON: {why}." if why else "The request body is not valid JSON."
    return problem_response(400, detail, slug="malformed-json")


def domain_problem(exc: DomainError) -> Response:
    status, slug = next((v for k, v in _DOMAIN_STATUS.items() if isinstance(exc, k)), (500, "internal-error"))
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    extra: dict[str, Any] = {}
    if isinstance(exc, EventConflict):
        extra = {"event_id": str(exc.event_id), "conflicting_fields": list(exc.fields)}
    elif isinstance(exc, InvalidEvent):  # already counted by the service, with its reason
        error = {"field": exc.field or "", "message": str(exc), "type": exc.reason}
        extra = {"reason": exc.reason, "errors": [error]}
    return problem_response(status, str(exc), slug=slug, headers=headers, **extra)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on the request's path (asking each route, as the router does)."""
    allowed = []
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


def install_problem_handlers(app: FastAPI, rejections: Rejections) -> None:
    """Map every error to a problem response; refused ingest requests are counted by `rejections`."""

    async def on_validation(request: Request, exc: RequestValidationError) -> Response:
        return validation_problem(exc.errors(), rejections if request.method == "POST" else None)

    async def on_http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        headers = dict(exc.headers or {})
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No route for {request.url.path}"
        if exc.status_code == 405:
            # Starlette names the methods of the first route on the path only; /v1/events has two routes.
            allowed = allowed_methods(request)
            if allowed:
                headers["Allow"] = ", ".join(allowed)
                detail = f"{request.method} is not allowed on {request.url.path}; allowed: {headers['Allow']}"
        return problem_response(exc.status_code, detail, headers=headers)

    async def on_api_problem(request: Request, exc: ApiProblem) -> Response:
        return api_problem_response(exc)

    async def on_domain(request: Request, exc: DomainError) -> Response:
        return domain_problem(exc)

    app.add_exception_handler(RequestValidationError, on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, on_http)  # type: ignore[arg-type]
    app.add_exception_handler(ApiProblem, on_api_problem)  # type: ignore[arg-type]
    app.add_exception_handler(DomainError, on_domain)  # type: ignore[arg-type]
