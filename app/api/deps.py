"""What routes share: the runtime of the app serving a request, the dependency aliases built on it, the
event filter of the read routes and the problem statuses every route documents."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request

from app.api.compat.inflate import BodyDecoder
from app.api.problems import ApiProblem, problem_responses
from app.api.read_capacity import ReadCapacity
from app.api.schemas import PLAIN_TEXT, UtcDatetime
from app.bootstrap import Runtime
from app.config import Settings
from app.repository.port import EventFilter
from app.services.event_service import EventService


def attach_runtime(app: FastAPI, runtime: Runtime) -> None:
    """The one thing kept on app.state, read back typed with runtime_of."""
    app.state.runtime = runtime


def runtime_of(request: Request) -> Runtime:
    runtime = request.app.state.runtime
    if not isinstance(runtime, Runtime):
        raise TypeError("this app was not built by app.main.create_app: it has no Runtime")
    return runtime


# async: a plain `def` dependency would cost every request a hop to the thread pool and back.
async def get_service(request: Request) -> EventService:
    return runtime_of(request).service


async def get_settings(request: Request) -> Settings:
    return runtime_of(request).settings


async def get_reads(request: Request) -> ReadCapacity:
    return runtime_of(request).reads


async def get_body_decoder(request: Request) -> BodyDecoder:
    return runtime_of(request).body_decoder


ServiceDep = Annotated[EventService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ReadsDep = Annotated[ReadCapacity, Depends(get_reads)]
DecoderDep = Annotated[BodyDecoder, Depends(get_body_decoder)]


def event_filter(
    user_id: Annotated[str | None, Query(max_length=256, pattern=PLAIN_TEXT)] = None,
    action: Annotated[str | None, Query(max_length=128, pattern=PLAIN_TEXT)] = None,
    source: Annotated[str | None, Query(max_length=128, pattern=PLAIN_TEXT)] = None,
    since: Annotated[UtcDatetime | None, Query(description="Inclusive lower bound on timestamp")] = None,
    until: Annotated[UtcDatetime | None, Query(description="Exclusive upper bound on timestamp")] = None,
) -> EventFilter:
    if since is not None and until is not None and since >= until:
        raise ApiProblem(422, "invalid-range", "`since` must be earlier than `until`")
    return EventFilter(user_id=user_id, action=action, source=source, since=since, until=until)


FilterDep = Annotated[EventFilter, Depends(event_filter)]

# Every route with a key may answer these: no/invalid key, key without the scope, over the rate limit.
ACCESS_PROBLEMS = problem_responses(401, 403, 429)
# Every body-taking route may answer these too: lenient JSON, stalled or oversized body, wrong media type.
BODY_PROBLEMS = problem_responses(400, 408, 413, 415, 422)
