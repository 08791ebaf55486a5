"""SDK bodies read before their key is known: a shared memory budget, and decoding off the event loop.

PostHog puts its key inside the (often gzip) body, so the body must be inflated and parsed before the key
can be checked. Unchecked, a crowd of small gzip bodies that each inflate to megabytes holds gigabytes and
keeps the event loop busy inflating. Here every byte such a request holds (on the wire, inflated, as text)
is taken from one process-wide budget before it is held, and handed back when the request ends, answered or
refused, and so is an estimate of what parsing will make of it (taken before parsing); a request that finds
no room left is answered 503 with Retry-After at once. Inflating and parsing
run on small thread pools of their own, so neither the event loop nor the threads that serve reads wait, and
bodies whose key was checked from a header never queue behind those whose key is still unknown.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from starlette.requests import Request

from app.api.compat.body import BodyTooLarge, BoundedInflater, wbits_for

P = ParamSpec("P")
T = TypeVar("T")


class BudgetExhausted(Exception):
    """No room left in the decoding budget: the request is answered 503 and frees what it held."""


class DecodeBudget:
    """Bytes held by SDK bodies whose key is not yet checked, across all connections (thread-safe)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        return self._used

    def take(self, size: int) -> None:
        with self._lock:
            if self._used + size > self.capacity:
                raise BudgetExhausted
            self._used += size

    def give_back(self, size: int) -> None:
        with self._lock:
            self._used -= size


class Reservation:
    """What one request took from the budget; `release()` (once, when the request ends) hands it all back."""

    def __init__(self, budget: DecodeBudget) -> None:
        self._budget = budget
        self._held = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> None:
        self._budget.take(size)
        with self._lock:
            self._held += size

    def release(self) -> None:
        with self._lock:
            held, self._held = self._held, 0
        self._budget.give_back(held)


class BodyDecoder:
    """The budget and the decoding threads (one pool for bodies with a checked key, one for the others), per process.

    Bodies whose key is unchecked also queue for the threads only up to `max_waiting` at once: past it they
    are refused at once, so a crowd of them neither waits minutes in line nor holds its sockets and buffers.
    """

    def __init__(self, budget_bytes: int, *, threads: int = 2, max_waiting: int = 32) -> None:
        self.budget = DecodeBudget(budget_bytes)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sdk-body")
        self._unchecked_pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sdk-body-unchecked")
        self._max_waiting = max_waiting
        self._unchecked = 0  # touched on the event loop only

    def reservation(self) -> Reservation:
        return Reservation(self.budget)

    async def run(self, reservation: Reservation | None, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`work` on a decoding thread; the event loop serves other requests meanwhile. With a reservation (the
        key is not checked yet) BudgetExhausted when `max_waiting` such bodies are already queued or decoding."""
        loop = asyncio.get_running_loop()
        if reservation is None:
            return await loop.run_in_executor(self._pool, lambda: work(*args, **kwargs))
        if self._unchecked >= self._max_waiting:
            raise BudgetExhausted
        self._unchecked += 1
        try:
            return await loop.run_in_executor(self._unchecked_pool, lambda: work(*args, **kwargs))
        finally:
            self._unchecked -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._unchecked_pool.shutdown(wait=False, cancel_futures=True)


async def read_wire(request: Request, *, limit: int, encoding: str, reservation: Reservation | None) -> bytes:
    """The body as sent (still compressed), each chunk taken from the reservation before it is kept."""
    wire_limit = limit if wbits_for(encoding) is None else limit + limit // 100 + 1024
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > wire_limit:
        raise BodyTooLarge(limit)
    raw = bytearray()
    async for chunk in request.stream():
        if len(raw) + len(chunk) > wire_limit:
            raise BodyTooLarge(limit)
        if reservation is not None:
            reservation.take(len(chunk))
        raw += chunk
    return bytes(raw)


# What parsing makes of each byte, at most (CPython 3.11, measured with tracemalloc): an object or array costs
# ~72 bytes however short its text, a member or item 24-40 more, a string ~50. An upper bound, so a body of
# `[{},{},...]`, 8 MB of text and ~140 MB once parsed, is refused before it is parsed.
_PARSED_COST = ((b"{", 72), (b"[", 72), (b":", 24), (b",", 40), (b'"', 30))


def parsed_size_estimate(raw: bytes) -> int:
    """Bytes that the text of `raw` and its parsed value may take (counted in C, no parsing)."""
    return len(raw) + sum(cost * raw.count(char) for char, cost in _PARSED_COST)


def inflate(wire: bytes, encoding: str, *, limit: int, reservation: Reservation | None) -> bytes:
    """The body decoded per Content-Encoding (on a decoding thread), at most `limit` bytes, each piece budgeted."""
    wbits = wbits_for(encoding)
    if wbits is None:
        return wire
    inflater = BoundedInflater(wbits, limit, on_output=reservation.take if reservation else None)
    inflater.feed(wire)
    return inflater.finish()
