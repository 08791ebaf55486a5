"""Request body limits as a plain ASGI middleware: size (413) and a stalled body (408).

The size is counted as the body streams in, so a chunked body without Content-Length is held to the same
limit, and no more than the limit (plus one chunk) is ever buffered. A Content-Length over the limit is
refused before a byte of the body is read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import problem_response


class _BodyRefused(Exception):
    """Raised into the app from receive() once the body is refused; the middleware answers instead."""


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        timeout_s: float,
        on_reject: Callable[[str], None],
        path_limits: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Routes that read a large body their own bounded way (PostHog's batches) get their own limit.
        self.path_limits = dict(path_limits or {})
        self.timeout_s = timeout_s
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.path_limits.get(scope["path"], self.max_bytes)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._refuse("body_too_large", scope, receive, send, limit)
            return

        received = 0
        body_done = False
        refused: str | None = None
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, body_done, refused
            if refused:
                raise _BodyRefused(refused)
            if body_done:  # after the body, receive() only waits for a disconnect: no clock on that
                return await receive()
            try:
                # asyncio.timeout, not wait_for: no extra task per body chunk.
                async with asyncio.timeout(self.timeout_s):
                    message = await receive()
            except TimeoutError:
                refused = "body_timeout"
                raise _BodyRefused(refused) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = "body_too_large"
                    raise _BodyRefused(refused)
                body_done = not message.get("more_body", False)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if refused and not response_started:
                return  # whatever the app answers to a body it did not get whole, ours replaces it
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not refused:
                raise
        if refused and not response_started:
            await self._refuse(refused, scope, receive, send, limit)

    async def _refuse(self, reason: str, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        self.on_reject(reason)
        if reason == "body_too_large":
            response = problem_response(413, f"The request body is over {limit} bytes.", slug="body-too-large")
        else:
            # The connection is in an unknown state (part of a body is in flight): close it after answering.
            response = problem_response(
                408,
                f"The request body stalled for {self.timeout_s:g} s.",
                slug="body-timeout",
                headers={"Connection": "close"},
            )
        await response(scope, receive, send)
