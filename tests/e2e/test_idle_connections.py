"""Idle and slow clients cannot hold the service's connections: a real process at `ulimit -n 1024`.

Loopback only, bounded: 1,100 sockets that never send a byte, held open by the test for the whole test.
"""

from __future__ import annotations

import resource
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import ServerProcess

HEADER_TIMEOUT_S = 2
IDLE_SOCKETS = 1100


def fd_limit_1024() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


@pytest.fixture
def limited_server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    env = {"TELEMETRY_HTTP_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S), "TELEMETRY_HTTP_KEEP_ALIVE_TIMEOUT_S": "1"}
    return start_server(env=env, preexec_fn=fd_limit_1024)


@pytest.fixture
def idle_sockets(limited_server: ServerProcess) -> Iterator[list[socket.socket]]:
    held: list[socket.socket] = []
    try:
        for _ in range(IDLE_SOCKETS):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", limited_server.port))
            held.append(sock)
        yield held
    finally:
        for sock in held:
            sock.close()


def served(base_url: str) -> bool:
    try:
        with httpx.Client(base_url=base_url, timeout=1) as client:
            return client.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def test_a_new_client_is_served_after_the_header_timeout_while_1100_idle_sockets_stay_open(
    limited_server: ServerProcess, idle_sockets: list[socket.socket]
) -> None:
    fds = Path(f"/proc/{limited_server.proc.pid}/fd")
    started = time.monotonic()
    while len(list(fds.iterdir())) < 1000:  # the server has taken in as many idle sockets as it can hold
        assert time.monotonic() < started + 10, len(list(fds.iterdir()))
        time.sleep(0.05)
    deadline = started + HEADER_TIMEOUT_S * 3 + 10
    in_a_row = 0  # with every descriptor taken, a client may slip in now and then: served means served each time
    while in_a_row < 5:
        assert time.monotonic() < deadline, "new clients not served while idle sockets are held"
        in_a_row = in_a_row + 1 if served(limited_server.base_url) else 0
        time.sleep(0.2)
    waited = time.monotonic() - started
    print(f"new client served after {waited:.1f} s with {len(idle_sockets)} idle sockets held")
    assert all(sock.fileno() != -1 for sock in idle_sockets)  # the attacker never let go
    assert limited_server.proc.poll() is None


def test_headers_that_trickle_in_are_cut_off_at_the_header_timeout(limited_server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", limited_server.port), timeout=HEADER_TIMEOUT_S + 10) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line that ends the headers
        try:
            ended = sock.recv(1024) == b""
        except ConnectionResetError:
            ended = True
        assert ended
        assert HEADER_TIMEOUT_S - 0.5 <= time.monotonic() - started < HEADER_TIMEOUT_S + 5


def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(limited_server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", limited_server.port), timeout=15) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        try:
            ended = sock.recv(1024) == b""
        except ConnectionResetError:
            ended = True
        assert ended
        assert time.monotonic() - started < 5
