"""The edge hands a route with a lean handler the whole body, after the route's policy, instead of the app."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from starlette.responses import PlainTextResponse, Response

from app.api.edge import EdgeMiddleware
from app.api.policy import RoutePolicy, declare
from app.bootstrap import Runtime, build_runtime
from app.config import Settings
from tests.unit.test_body_limit import Client, reading_app

bodies: list[bytes] = []


async def lean_handler(runtime: Runtime, body: bytes) -> Response:
    bodies.append(body)
    return PlainTextResponse(f"lean {len(body)}", status_code=201)


router = APIRouter()


@router.post("/v1/events", dependencies=[declare(RoutePolicy(json_body=True, lean=lean_handler))])
async def route() -> None:
    raise AssertionError("the edge answers this route")


def run(client: Client, content_type: bytes = b"application/json", **settings: Any) -> dict[str, Any]:
    bodies.clear()
    runtime = build_runtime(Settings(request_max_bytes=250, **settings))
    middleware = EdgeMiddleware(
        reading_app,
        settings=runtime.settings,
        rejections=runtime.rejections,
        access=runtime.access,
        routes=lambda: router.routes,
        runtime=runtime,
    )
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/v1/events",
        "headers": [(b"content-type", content_type)],
    }
    asyncio.run(middleware(scope, client.receive, client.send))
    return scope


def text(client: Client) -> bytes:
    return b"".join(m.get("body", b"") for m in client.sent[1:])


def test_the_lean_handler_answers_with_the_whole_body_and_the_route_label() -> None:
    client = Client([b"a" * 100, b"b" * 50])
    scope = run(client)
    assert (client.status, text(client)) == (201, b"lean 150")
    assert bodies == [b"a" * 100 + b"b" * 50]
    assert scope["route"].path == "/v1/events"  # labelled with the route in metrics and the access line


def test_with_lean_ingest_off_the_app_answers() -> None:
    client = Client([b"a" * 100])
    run(client, lean_ingest=False)
    assert (client.status, client.body) == (200, {"size": 100})
    assert bodies == []


def test_the_policy_comes_first_a_body_over_the_limit_never_reaches_the_lean_handler() -> None:
    client = Client([b"x" * 100] * 10)
    run(client)
    assert client.status == 413
    assert bodies == []


def test_a_refused_media_type_never_reaches_the_lean_handler() -> None:
    client = Client([b"x"])
    run(client, content_type=b"text/plain")
    assert client.status == 415
    assert bodies == []


class GoneClient(Client):
    """Sends part of a body, announcing more, then disconnects."""

    async def receive(self) -> Any:
        self.pulled += 1
        if self.pulled == 1:
            return {"type": "http.request", "body": b"{", "more_body": True}
        return {"type": "http.disconnect"}


def test_a_client_gone_before_the_end_of_its_body_is_answered_400_as_the_route_would() -> None:
    client = GoneClient([])
    run(client)
    assert client.status == 400
    assert client.body["detail"] == "There was an error parsing the body"
    assert bodies == []


def test_a_json_body_answers_with_the_headers_starlettes_response_would_give() -> None:
    from app.api.schemas import JsonBody
    from app.json_codec import json_bytes

    content = {"event_id": "x", "metadata": {"é": [1, 2.5, None]}}
    fast = JsonBody(content, status_code=201)
    general = Response(json_bytes(content), status_code=201, media_type="application/json")
    assert (fast.status_code, fast.body, fast.raw_headers) == (general.status_code, general.body, general.raw_headers)
    with_headers = JsonBody(content, headers={"Location": "/v1/events/x"})
    assert with_headers.raw_headers[0] == (b"location", b"/v1/events/x")
    assert with_headers.raw_headers[1:] == general.raw_headers


def test_the_edge_reads_the_first_of_repeated_headers_by_lower_case_name() -> None:
    from starlette.datastructures import Headers

    from app.api.middleware import RequestHeaders

    scope = {"headers": [(b"x-request-id", b"one"), (b"content-type", b"application/json"), (b"x-request-id", b"two")]}
    ours, starlettes = RequestHeaders(scope), Headers(scope=scope)
    for name in ("x-request-id", "content-type", "origin"):
        assert ours.get(name) == starlettes.get(name)
        assert (name in ours) == (name in starlettes)
