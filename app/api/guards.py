"""Wires the hostile-input limits and access control into an app, from Settings (one call in create_app)."""

from __future__ import annotations

from fastapi import FastAPI

from app.api.body_limit import BodyLimitMiddleware
from app.api.compat import POSTHOG_PATHS
from app.api.cors import IngestCorsMiddleware
from app.bootstrap import Runtime
from app.config import Settings

INGEST_MARK = "x-telemetry-ingest"  # openapi_extra={INGEST_MARK: True}: an ingest route that checks keys itself


def ingest_paths(app: FastAPI) -> set[str]:
    """Paths of the POST routes that need the ingest scope (from the OpenAPI schema, which names each route's
    scope), or that say they ingest (INGEST_MARK): the only ones CORS opens to browsers."""
    paths = set()
    for path, operations in app.openapi().get("paths", {}).items():
        post = operations.get("post", {})
        needs_ingest = any("ingest" in requirement.get("ApiKey", ()) for requirement in post.get("security", ()))
        if needs_ingest or post.get(INGEST_MARK):
            paths.add(path)
    return paths


def limits_description(settings: Settings) -> str:
    return (
        "Limits in force (settings, TELEMETRY_*): request body at most "
        f"{settings.request_max_bytes} bytes (413, counted as it streams in), body stalled "
        f"{settings.request_body_timeout_s:g} s: 408; one event at most {settings.event_max_bytes} bytes as JSON, "
        f"metadata at most {settings.metadata_max_depth} levels deep and {settings.metadata_max_keys} keys in all, "
        f"no NUL anywhere, integers within 64 bits, timestamp from {settings.timestamp_min.isoformat()} to "
        f"{settings.timestamp_max_future_s:g} s ahead of the server clock (after sent_at skew correction): 422; "
        f"at most {settings.batch_max_events} events a batch: 413; Content-Type other than application/json: 415; "
        "lenient JSON (NaN, duplicate keys, lone surrogates, invalid UTF-8): 400. "
        + (
            f"Rate limit: {settings.rate_limit_per_s:g} requests/s per key (per process): 429."
            if settings.rate_limit_per_s
            else "No rate limit."
        )
    )


def install_guards(app: FastAPI, runtime: Runtime) -> None:
    """Call after the routers are included and before the request-context middleware is added."""
    settings = runtime.settings
    if runtime.access.keyring.open:
        runtime.log.warning(
            "access_open", detail="no API key configured (TELEMETRY_API_KEYS): anyone may send and read"
        )
    app.description = limits_description(settings)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.request_max_bytes,
        timeout_s=settings.request_body_timeout_s,
        on_reject=runtime.rejections,
        path_limits=dict.fromkeys(POSTHOG_PATHS, max(settings.request_max_bytes, settings.posthog_max_body_bytes)),
    )
    if settings.cors_origins:
        app.add_middleware(IngestCorsMiddleware, origins=settings.cors_origins, paths=lambda: ingest_paths(app))
