"""The app in this process, driven through httpx's ASGI transport from synchronous tests (lifespan included)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal

from app.config import Settings
from app.main import create_app


class InProcessClient:
    """Calls the app as a client would, on one event loop that runs in a background thread."""

    def __init__(self, portal: BlockingPortal, client: httpx.AsyncClient) -> None:
        self._portal = portal
        self._client = client

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self._portal.call(lambda: self._client.request(method, url, **kwargs))

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("OPTIONS", url, **kwargs)


@contextmanager
def in_process_app(tmp_path: Path, database_url: str | None = None, **settings: Any) -> Iterator[InProcessClient]:
    """A fresh app on a SQLite file in tmp_path (or on database_url); a server error is a response (500), not an
    exception."""
    url = database_url or f"sqlite:///{tmp_path / 'telemetry.db'}"
    app = create_app(Settings(database_url=url, **settings))
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    with start_blocking_portal() as portal:
        lifespan = portal.wrap_async_context_manager(app.router.lifespan_context(app))
        with lifespan:
            client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
            try:
                yield InProcessClient(portal, client)
            finally:
                portal.call(client.aclose)
