"""/docs (Swagger UI) and /redoc served with their JavaScript and CSS from the service itself: no CDN.

The assets come from the pinned PyPI package fastapi-offline (Swagger UI 5 and ReDoc 2, both render
OpenAPI 3.1); only its static folder is used, the pages are FastAPI's own.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.responses import FileResponse, HTMLResponse
from starlette.routing import BaseRoute

from app.config import Settings

ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs-assets"
# A route over a fixed set of files, not a StaticFiles mount: requests get a route label in the metrics.
ASSETS = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"})
# Swagger UI's default online validator badge would call an outside host: off.
_SWAGGER_PARAMETERS = {"validatorUrl": None, "displayRequestDuration": True}


def install_offline_docs(app: FastAPI) -> None:
    """Replace FastAPI's CDN-based /docs and /redoc pages with pages whose assets the service serves."""
    docs_url, redoc_url = app.docs_url or "/docs", app.redoc_url or "/redoc"
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"
    openapi_url = app.openapi_url or "/openapi.json"
    replaced = {docs_url, redoc_url, redirect_url}
    app.router.routes[:] = [route for route in app.router.routes if _path(route) not in replaced]

    @app.get(f"{ASSETS_URL}/{{name}}", include_in_schema=False)
    async def docs_asset(name: str) -> FileResponse:
        if name not in ASSETS:
            raise HTTPException(404, f"No docs asset named {name!r}")
        return FileResponse(ASSETS_DIR / name, headers={"Cache-Control": "public, max-age=86400"})

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{redirect_url}",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters={**_SWAGGER_PARAMETERS, **(app.swagger_ui_parameters or {})},
        )

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )


def _path(route: BaseRoute) -> str | None:
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None


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
