"""GET /: the live events page, one static HTML page with its script and style, served by the service itself.

The page reads the API like any client (GET /v1/events?order=desc, GET /v1/stats), so it needs no route of its
own beyond these files; with keys configured it asks for a read key and keeps it in the tab's sessionStorage.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from starlette.responses import FileResponse

STATIC_DIR = Path(__file__).parent / "static"
# A fixed set of files behind one route, not a StaticFiles mount: each request gets a route label in the metrics.
ASSETS = {"live.js": "text/javascript", "live.css": "text/css"}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def live_events_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "live.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/live-assets/{name}")
async def live_asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise HTTPException(404, f"No page asset named {name!r}")
    return FileResponse(STATIC_DIR / name, media_type=ASSETS[name], headers={"Cache-Control": "no-cache"})
