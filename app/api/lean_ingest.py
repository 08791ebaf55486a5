"""The lean ingest path: a JSON ingest route's answer to the body the edge has read, without FastAPI's
per-request machinery (routing, dependency solving, Request objects, exception layers).

The edge (edge.py) calls a route's lean handler (RoutePolicy.lean) once the route's policy has passed: CORS,
body limit, key and scope, media type. Each step after that is the one the FastAPI route takes, through the
same code: strict JSON (400), the route's body model validated by the same pydantic schema (422, with the
error list FastAPI would report), the route's own service call and response, errors mapped by problems.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError
from starlette.responses import Response

from app.api.problems import ApiProblem, api_problem_response, domain_problem, validation_problem
from app.api.strict_json import StrictJsonError, parse_strict_json
from app.bootstrap import Runtime
from app.models import DomainError

Body = TypeVar("Body")

# What FastAPI reports for a required body that is empty, and for one that is not JSON.
_MISSING_BODY = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}


def _json_invalid(why: str) -> dict[str, Any]:
    return {"type": "json_invalid", "loc": ("body", 0), "msg": "JSON decode error", "ctx": {"error": why}}


async def lean_answer(
    runtime: Runtime,
    body: bytes,
    adapter: TypeAdapter[Body],
    record: Callable[[Runtime, Body], Awaitable[Response]],
) -> Response:
    """The answer of the route whose body model is `adapter`'s and whose work is `record`."""
    if not body:
        return validation_problem([_MISSING_BODY], runtime.rejections)
    try:
        value = parse_strict_json(body)
    except StrictJsonError as exc:
        return validation_problem([_json_invalid(str(exc))], runtime.rejections)
    try:
        # from_attributes: as FastAPI validates a body field
        model = adapter.validate_python(value, from_attributes=True)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        return validation_problem(errors, runtime.rejections)
    try:
        return await record(runtime, model)
    except ApiProblem as exc:
        return api_problem_response(exc)
    except DomainError as exc:
        return domain_problem(exc)
