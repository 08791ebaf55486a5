"""uvicorn's HTTP protocol with a deadline for request headers, and the config that carries it.

uvicorn closes a keep-alive connection idle after a response (timeout_keep_alive), but not one that never
sends a request, or sends its headers a byte at a time: a thousand such sockets hold every file descriptor
of the process and no new client gets in. Here a connection must complete its request headers within
`header_timeout_s` of being opened, and of its previous response; past it, it is closed. A request whose
headers are in is not timed here (the body has its own timeout, the app its own limits).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

DEFAULT_HEADER_TIMEOUT_S = 10.0


class ServeConfig(Config):
    """uvicorn's Config plus the header deadline; it pickles, so `serve --workers N` hands it to each worker."""

    def __init__(self, app: Any, *, header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S, **kwargs: Any) -> None:
        self.header_timeout_s = header_timeout_s
        super().__init__(app, http=HeaderDeadlineProtocol, **kwargs)


class HeaderDeadlineProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout_s = (
            config.header_timeout_s if isinstance(config, ServeConfig) else DEFAULT_HEADER_TIMEOUT_S
        )
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:  # idle, waiting for the next request
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()
