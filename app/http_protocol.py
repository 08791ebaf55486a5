"""uvicorn's HTTP protocol with a deadline for request headers and a cap on open connections.

uvicorn closes a keep-alive connection idle after a response (timeout_keep_alive), but not one that never
sends a request, or sends its headers a byte at a time: a thousand such sockets hold every file descriptor
of the process and no new client gets in. Here:
- a connection must complete its request headers within `header_timeout_s` of being opened, and of its
  previous response; past it, it is closed. A request whose headers are in is not timed here (the body has
  its own timeout, the app its own limits);
- past `max_connections` open connections, each new one closes the connection that has been idle (no
  request in progress) the longest, so new clients get in before the descriptors run out, even while the
  deadline has not yet come for the idle ones.

And with several workers each one listens on a socket of its own (SO_REUSEPORT), so that the kernel spreads
new connections over them (ReusePortSocket).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import sys
import time
from typing import Any, SupportsIndex

from uvicorn import Config
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

DEFAULT_HEADER_TIMEOUT_S = 10.0
_uvicorn_log = logging.getLogger("uvicorn.error")  # where uvicorn's own bind_socket reports


def default_max_connections() -> int:
    """The process's file-descriptor limit less a tenth (at least 64) for the database, logs and the listener."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 100_000
    return max(64, soft - max(64, soft // 10))


class ServeConfig(Config):
    """uvicorn's Config plus the header deadline and the connection cap; it pickles, so `serve --workers N`
    hands it to each worker."""

    def __init__(
        self,
        app: Any,
        *,
        header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
        max_connections: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.header_timeout_s = header_timeout_s
        self.max_connections = max_connections or default_max_connections()
        super().__init__(app, http=HeaderDeadlineProtocol, **kwargs)

    def bind_socket(self) -> socket.socket:
        """The socket `serve --workers N` hands its workers: with SO_REUSEPORT, each gets one of its own."""
        if self.workers <= 1 or self.uds is not None or self.fd is not None or not hasattr(socket, "SO_REUSEPORT"):
            return super().bind_socket()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            sock = ReusePortSocket.bound(family, (self.host, self.port))
        except OSError as exc:
            _uvicorn_log.error(exc)
            sys.exit(STARTUP_FAILURE)
        address = f"[{self.host}]" if family == socket.AF_INET6 else self.host
        _uvicorn_log.info("Uvicorn running on http://%s:%d (Press CTRL+C to quit)", address, sock.getsockname()[1])
        return sock


class ReusePortSocket(socket.socket):
    """A TCP socket bound with SO_REUSEPORT; pickled (as uvicorn hands its sockets to each spawned worker), it
    becomes a new socket bound to the same address, not a copy of this one.

    On one shared listening socket the worker that wakes first accepts every connection waiting (uvloop
    takes the whole backlog in one go), so a pool of keep-alive connections opened at once stays on one
    worker: 30 of 32 went to one of two workers here, and N workers did the work of one. With a listening
    socket per worker the kernel spreads new connections over them by a hash of their addresses, as nginx's
    `reuseport` and gunicorn's `--reuse-port` do. The supervisor's own socket is bound, never listening: it
    holds the port and takes no connections. The price: connections still waiting in a worker's backlog when
    that worker dies are reset (the shared socket would have kept them for the others).
    """

    @classmethod
    def bound(cls, family: int, address: tuple[Any, ...]) -> ReusePortSocket:
        sock = cls(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
        except OSError:
            sock.close()
            raise
        return sock

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        return (ReusePortSocket.bound, (self.family, self.getsockname()))


class HeaderDeadlineProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        served = config if isinstance(config, ServeConfig) else None
        self.header_timeout_s = served.header_timeout_s if served else DEFAULT_HEADER_TIMEOUT_S
        self.max_connections = served.max_connections if served else default_max_connections()
        self._header_deadline: asyncio.TimerHandle | None = None
        self.idle_since: float | None = None  # monotonic time since which no request is in progress

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()
        if len(self.connections) > self.max_connections:
            self._close_longest_idle()

    def on_headers_complete(self) -> None:
        self._disarm()
        self.idle_since = None
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:  # idle, waiting for the next request
            self._arm()

    def _close_longest_idle(self) -> None:
        idle = [c for c in self.connections if isinstance(c, HeaderDeadlineProtocol) and c.idle_since is not None]
        if idle:
            oldest = min(idle, key=lambda c: c.idle_since or 0.0)
            if not oldest.transport.is_closing():
                oldest.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self.idle_since = time.monotonic()
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()
