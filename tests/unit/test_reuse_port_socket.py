"""What a worker of `serve --workers N` gets for the supervisor's socket: one of its own on the same address."""

from __future__ import annotations

import pickle
import socket
from multiprocessing.reduction import ForkingPickler

import pytest

from app.http_protocol import ReusePortSocket, ServeConfig


@pytest.mark.parametrize(("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_pickled_for_a_worker_it_is_a_new_socket_bound_to_the_same_address(family: int, host: str) -> None:
    held = ReusePortSocket.bound(family, (host, 0))
    try:
        given = pickle.loads(ForkingPickler.dumps(held))  # noqa: S301 (our own bytes)
        try:
            assert given.fileno() != held.fileno()
            assert given.getsockname()[:2] == held.getsockname()[:2]
            assert given.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
            given.listen()
            with socket.create_connection((host, held.getsockname()[1]), timeout=5):
                accepted, _ = given.accept()  # the worker's socket takes the connections; the held one never listens
                accepted.close()
        finally:
            given.close()
    finally:
        held.close()


def test_only_several_workers_get_a_reuse_port_socket() -> None:
    one = ServeConfig("app.main:app", host="127.0.0.1", port=0, workers=1).bind_socket()
    several = ServeConfig("app.main:app", host="127.0.0.1", port=0, workers=2).bind_socket()
    try:
        assert type(one) is socket.socket
        assert isinstance(several, ReusePortSocket)
    finally:
        one.close()
        several.close()
