"""A response leaves in one send() per turn of the event loop (app/http_protocol.py, TurnWrites): a real
uvicorn server with the service's HTTP protocol, in a thread of this process, and a real socket on 127.0.0.1.

The server thread's write system calls are read from /proc (its `syscw`), so the test counts what the kernel
saw, not what the code meant to do."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from app.http_protocol import ServeConfig

REQUEST = b"GET /x HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"
BODY = b'{"ok":true}'


class Served:
    """uvicorn in a thread, on a socket bound here; the thread's id for its /proc counters."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = ServeConfig(app, log_config=None, access_log=False, lifespan="off", loop="uvloop")
        self.server = uvicorn.Server(config)
        self.native_id = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.native_id = threading.get_native_id()
        self.server.run(sockets=[self.sock])

    def writes(self) -> int:
        """Write-like system calls the server thread has made (send, write...)."""
        text = Path(f"/proc/self/task/{self.native_id}/io").read_text()
        return int(next(line.split()[1] for line in text.splitlines() if line.startswith("syscw:")))


@contextlib.contextmanager
def served(app: Any) -> Iterator[Served]:
    server = Served(app)
    server.thread.start()
    for _ in range(500):
        if server.server.started:
            break
        threading.Event().wait(0.01)
    assert server.server.started
    try:
        yield server
    finally:
        server.server.should_exit = True
        server.thread.join(10)
        server.sock.close()


def read_response(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(BODY):
        chunk = conn.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data


async def small_json(scope: Any, receive: Any, send: Any) -> None:
    # What every JSON route does: the head, then the whole body, in the same turn of the loop.
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json"), (b"content-length", b"11")]})
    await send({"type": "http.response.body", "body": BODY})


def test_a_small_response_is_one_send_not_two() -> None:
    requests = 40
    with served(small_json) as server, socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        conn.sendall(REQUEST)
        assert read_response(conn).startswith(b"HTTP/1.1 200 OK\r\n")  # connected: the counters start here
        before = server.writes()
        for _ in range(requests):
            conn.sendall(REQUEST)
            response = read_response(conn)
            assert response.startswith(b"HTTP/1.1 200 OK\r\n")
            assert response.endswith(b"\r\n\r\n" + BODY)
        sends = server.writes() - before
    # uvicorn alone makes two: the head when the app starts the response, the body when it sends it.
    assert sends == requests


def test_a_head_is_not_held_while_the_app_waits_for_its_body() -> None:
    head_seen = threading.Event()

    async def streamed(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"transfer-encoding", b"chunked")]})
        # The body comes only once the client has the head: a head held until the body would never arrive.
        await asyncio.get_running_loop().run_in_executor(None, head_seen.wait, 10)
        await send({"type": "http.response.body", "body": b"late", "more_body": False})

    with served(streamed) as server, socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        conn.sendall(REQUEST)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(65536)  # times out (5 s) if the head is held back
            assert chunk
            head += chunk
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"late" not in head
        head_seen.set()
        rest = head.split(b"\r\n\r\n", 1)[1]
        while not rest.endswith(b"0\r\n\r\n"):
            rest += conn.recv(65536)
        assert rest == b"4\r\nlate\r\n0\r\n\r\n"


def test_a_response_streamed_within_one_turn_is_not_held_whole() -> None:
    # 40 chunks of 16 KiB sent without yielding to the loop: held writes leave once 64 KiB are held, so the
    # transport's own buffer and flow control see them as they come (not one 640 KiB write at the end).
    chunk = b"x" * 16384
    sizes: list[int] = []

    async def burst(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"655360")]})
        for n in range(40):
            await send({"type": "http.response.body", "body": chunk, "more_body": n < 39})
            sizes.append(server.writes())

    with served(burst) as server, socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        conn.sendall(REQUEST)
        received = b""
        while not received.endswith(chunk) or len(received.split(b"\r\n\r\n", 1)[-1]) < 655360:
            part = conn.recv(1 << 20)
            assert part
            received += part
    assert received.split(b"\r\n\r\n", 1)[1] == chunk * 40
    # Sends were made during the burst, before the turn ended (held whole, there would be none until then).
    assert sizes[-1] > sizes[0]
