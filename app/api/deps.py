"""What routes share: the runtime of the app serving a request, and the dependency aliases built on it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request

from app.api.compat.inflate import BodyDecoder
from app.api.read_capacity import ReadCapacity
from app.bootstrap import Runtime
from app.config import Settings
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
