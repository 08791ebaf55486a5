"""The edge's body limit on a plain ASGI app: what it reads, what it lets through, what it answers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from app.api.access import AccessGuard, KeyRing
from app.api.edge import EdgeMiddleware
from app.config import Settings


class Client:
    """Feeds a body in chunks and records how many the server pulled and what it answered."""

    def __init__(self, chunks: list[bytes], stall: bool = False) -> None:
        self.chunks = chunks
        self.pulled = 0
        self.stall = stall
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        if self.pulled == len(self.chunks):
            if self.stall:  # the client promised more and sends nothing
                await asyncio.sleep(3600)
            return {"type": "http.disconnect"}
        self.pulled += 1
        more = self.stall or self.pulled < len(self.chunks)
        return {"type": "http.request", "body": self.chunks[self.pulled - 1], "more_body": more}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def body(self) -> dict[str, Any]:
        return dict(json.loads(b"".join(m.get("body", b"") for m in self.sent[1:])))


async def reading_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body, then answers 200 with its length (as any app would)."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": json.dumps({"size": size}).encode()})


class Reasons(list[str]):
    def __call__(self, reason: str, count: int = 1, **fields: Any) -> None:
        self.append(reason)


def edge(timeout_s: float = 5.0) -> tuple[EdgeMiddleware, Reasons]:
    """The edge over reading_app, a 250-byte body limit, and the list of what it refused."""
    reasons = Reasons()
    settings = Settings(request_max_bytes=250, request_body_timeout_s=timeout_s)
    middleware = EdgeMiddleware(
        reading_app,
        settings=settings,
        rejections=reasons,  # type: ignore[arg-type]
        access=AccessGuard(KeyRing([]), None, reasons),
        routes=list,  # no routes: every request has the default policy
    )
    return middleware, reasons


def run(client: Client, headers: list[tuple[bytes, bytes]] | None = None, timeout_s: float = 5.0) -> list[str]:
    middleware, reasons = edge(timeout_s)
    scope = {"type": "http", "method": "POST", "path": "/v1/events", "headers": headers or []}
    asyncio.run(middleware(scope, client.receive, client.send))
    return reasons


def test_a_body_within_the_limit_reaches_the_app_whole() -> None:
    client = Client([b"x" * 100, b"x" * 100, b"x" * 50])
    assert run(client) == []
    assert (client.status, client.body) == (200, {"size": 250})


def test_a_streamed_body_is_cut_off_one_chunk_past_the_limit() -> None:
    client = Client([b"x" * 100] * 100)  # 10 kB, no Content-Length
    assert run(client) == ["body_too_large"]
    assert client.status == 413
    assert client.body["status"] == 413
    assert client.pulled == 3  # 300 bytes read of 10,000: never more than the limit plus one chunk


def test_a_content_length_over_the_limit_is_refused_before_reading() -> None:
    client = Client([b"x" * 100] * 3)
    assert run(client, headers=[(b"content-length", b"300")]) == ["body_too_large"]
    assert client.status == 413
    assert client.pulled == 0


def test_a_stalled_body_is_408_and_closes_the_connection() -> None:
    client = Client([b"x" * 10], stall=True)
    assert run(client, timeout_s=0.05) == ["body_timeout"]
    assert client.status == 408
    assert (b"connection", b"close") in client.sent[0]["headers"]


def test_one_edge_times_out_stalled_bodies_on_each_event_loop_it_serves() -> None:
    # The stall clock's timer belongs to a loop; an edge whose timer was still armed when its loop ended
    # (a test client's, a restarted server's) must still refuse a stalled body on the next loop.
    middleware, reasons = edge(timeout_s=0.2)
    scope = {"type": "http", "method": "POST", "path": "/v1/events", "headers": []}
    quick = Client([b"x" * 10])
    asyncio.run(middleware(dict(scope), quick.receive, quick.send))  # arms the timer; the loop ends before it fires
    assert quick.status == 200
    stalled = Client([b"x" * 10], stall=True)

    async def bounded() -> None:
        await asyncio.wait_for(middleware(dict(scope), stalled.receive, stalled.send), timeout=3)

    asyncio.run(bounded())
    assert stalled.status == 408
    assert reasons == ["body_timeout"]


def test_a_stalled_read_among_busy_ones_is_refused_and_the_others_go_on() -> None:
    async def scenario() -> tuple[list[str], list[int]]:
        middleware, reasons = edge(timeout_s=0.2)

        class Slow(Client):
            async def receive(self) -> Message:
                await asyncio.sleep(0.02)  # each chunk well within the timeout, the whole body past it
                return await super().receive()

        stalled = Client([b"x"], stall=True)
        slow = Slow([b"x"] * 20)
        scope = {"type": "http", "method": "POST", "path": "/v1/events", "headers": []}
        await asyncio.gather(
            middleware(dict(scope), stalled.receive, stalled.send), middleware(dict(scope), slow.receive, slow.send)
        )
        return reasons, [stalled.status, slow.status]

    reasons, statuses = asyncio.run(scenario())
    assert reasons == ["body_timeout"]
    assert statuses == [408, 200]  # the clock runs per chunk: 20 chunks of 20 ms in 0.4 s are not a stall
