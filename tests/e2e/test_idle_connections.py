"""Idle and slow clients cannot hold the service's connections: a real process at `ulimit -n 1024`.

Loopback only, bounded: 1,100 sockets that never send a byte, held open by the test for the whole test.
"""

from __future__ import annotations

import resource
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
    env = {
        "TELEMETRY_HTTP_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "TELEMETRY_HTTP_KEEP_ALIVE_TIMEOUT_S": "1",
        "TELEMETRY_HTTP_MAX_CONNECTIONS": "100000",  # no cap: the deadlines alone are under test
    }
    return start_server(env=env, preexec_fn=fd_limit_1024)


@contextmanager
def open_idle_sockets(server: ServerProcess) -> Iterator[list[socket.socket]]:
    held: list[socket.socket] = []
    try:
        for _ in range(IDLE_SOCKETS):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", server.port))
            held.append(sock)
        yield held
    finally:
        for sock in held:
            sock.close()


@pytest.fixture
def idle_sockets(limited_server: ServerProcess) -> Iterator[list[socket.socket]]:
    with open_idle_sockets(limited_server) as held:
        yield held


def served_each_time(server: ServerProcess, within_s: float, times: int = 5) -> float:
    """Seconds until `times` new clients in a row were served; fails the test past `within_s`."""
    started = time.monotonic()
    in_a_row = 0  # with every descriptor taken, a client may slip in now and then: served means served each time
    while in_a_row < times:
        assert time.monotonic() < started + within_s, "new clients not served while idle sockets are held"
        in_a_row = in_a_row + 1 if served(server.base_url) else 0
        time.sleep(0.2)
    return time.monotonic() - started


def test_past_the_connection_cap_the_longest_idle_connection_makes_room_before_any_timeout(
    start_server: Callable[..., ServerProcess],
) -> None:
    # Deadlines far off: only the cap (ulimit -n 1024 less a tenth) can let new clients in within the test.
    env = {"TELEMETRY_HTTP_HEADER_TIMEOUT_S": "300", "TELEMETRY_HTTP_KEEP_ALIVE_TIMEOUT_S": "300"}
    server = start_server(env=env, preexec_fn=fd_limit_1024)
    with open_idle_sockets(server) as held:
        waited = served_each_time(server, within_s=20)
        print(f"new clients served {waited:.1f} s after {len(held)} idle sockets were opened")
        assert all(sock.fileno() != -1 for sock in held)
    assert server.proc.poll() is None


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
    waited = served_each_time(limited_server, within_s=HEADER_TIMEOUT_S * 3 + 10)
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
        answer = sock.makefile("rb")
        assert answer.readline().startswith(b"HTTP/1.1 200")
        length = 0
        while (line := answer.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        answer.read(length)  # the whole answer: what comes next can only be the close
        started = time.monotonic()
        try:
            ended = answer.read(1) == b""
        except ConnectionResetError:
            ended = True
        assert ended
        assert time.monotonic() - started < 5
