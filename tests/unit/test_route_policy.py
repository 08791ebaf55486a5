"""Each route's RoutePolicy, as the app built by create_app declares it, and what the OpenAPI schema says."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from app.api.policy import OPEN, RoutePolicy, policy_of
from app.config import Settings
from app.main import create_app

SEGMENT_PATHS = {f"/v1/{p}" for p in ("track", "t", "page", "p", "screen", "s", "identify", "i", "group", "g")} | {
    "/v1/alias",
    "/v1/a",
    "/v1/batch",
    "/v1/import",
    "/v1/b",
}
POSTHOG_PATHS = {"/batch/", "/capture/", "/e/", "/i/v0/e/"}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    path: Path = tmp_path_factory.mktemp("policy") / "x.db"
    return create_app(Settings(database_url=f"sqlite:///{path}", posthog_max_body_bytes=5_000_000))


def policies(app: FastAPI) -> dict[tuple[str, str], RoutePolicy]:
    return {
        (method, context.path): policy_of(context)
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
        for method in context.methods or ()
    }


def test_cors_opens_exactly_the_post_ingest_routes(app: FastAPI) -> None:
    opened = {path for (method, path), policy in policies(app).items() if policy.cors}
    assert opened == {"/v1/events", "/v1/events/batch", *SEGMENT_PATHS, *POSTHOG_PATHS}
    assert all(method == "POST" for (method, _), policy in policies(app).items() if policy.cors)


def test_every_read_route_needs_the_read_scope_and_operations_are_open(app: FastAPI) -> None:
    found = policies(app)
    for path in ("/v1/events", "/v1/events/{event_id:uuid}", "/v1/events/export", "/v1/stats"):
        assert found[("GET", path)].scope == "read", path
    for path in ("/healthz", "/readyz", "/metrics"):
        assert found[("GET", path)] is OPEN, path


def test_the_openapi_schema_names_the_scope_the_edge_checks(app: FastAPI) -> None:
    schema = app.openapi()["paths"]
    for (method, path), policy in policies(app).items():
        operation = schema.get(path.replace(":uuid", ""), {}).get(method.lower())
        if operation is None:
            continue  # HEAD, docs pages: not in the schema
        expected = [{"ApiKey": [policy.scope]}] if policy.scope and not policy.key_in_body else None
        assert operation.get("security") == expected, (method, path)


def test_sdk_routes_take_their_key_from_the_body_and_posthog_has_its_own_body_limit(app: FastAPI) -> None:
    settings = Settings(request_max_bytes=1000, posthog_max_body_bytes=5_000_000)
    found = policies(app)
    assert all(found[("POST", p)].key_in_body for p in SEGMENT_PATHS | POSTHOG_PATHS)
    assert {found[("POST", p)].max_body_bytes(settings) for p in POSTHOG_PATHS} == {5_000_000}
    assert {found[("POST", p)].max_body_bytes(settings) for p in SEGMENT_PATHS} == {1000}
    assert found[("POST", "/v1/events/batch")].json_body
