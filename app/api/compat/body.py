"""Request bodies as SDKs send them: plain, gzip or deflate, read with a cap on the decompressed size.

The body is streamed and inflated a chunk at a time with zlib's max_length, so a decompression bomb
stops at the cap (413 or 400, the caller's choice) having used at most the cap in memory.
"""

from __future__ import annotations

import zlib

from starlette.requests import Request

GZIP_WBITS = 16 + zlib.MAX_WBITS
DEFLATE_WBITS = zlib.MAX_WBITS


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit} bytes (after decompression)")
        self.limit = limit


class UnreadableBody(Exception):
    """Compressed data that does not inflate, or an encoding we do not speak."""


class BoundedInflater:
    """Incremental zlib/gzip decoder that refuses to produce more than `limit` bytes."""

    def __init__(self, wbits: int, limit: int) -> None:
        self._wbits = wbits
        self._limit = limit
        self._decoder = zlib.decompressobj(wbits)
        self._out = bytearray()

    def feed(self, data: bytes) -> None:
        try:
            while data:
                room = self._limit - len(self._out) + 1
                self._out += self._decoder.decompress(data, room)
                if len(self._out) > self._limit:
                    raise BodyTooLarge(self._limit)
                if self._decoder.unconsumed_tail:
                    data = self._decoder.unconsumed_tail
                elif self._decoder.eof and self._decoder.unused_data:
                    # gzip allows several members one after another; each starts a new stream.
                    data = self._decoder.unused_data
                    self._decoder = zlib.decompressobj(self._wbits)
                else:
                    data = b""
        except zlib.error as exc:
            raise UnreadableBody(f"the body is not valid compressed data: {exc}") from exc

    def finish(self) -> bytes:
        if not self._decoder.eof:
            raise UnreadableBody("the compressed body ends before its end marker")
        return bytes(self._out)


def wbits_for(encoding: str) -> int | None:
    """zlib window bits for a Content-Encoding token; None for identity; UnreadableBody for others."""
    coding = encoding.strip().lower()
    if coding in ("", "identity"):
        return None
    if coding in ("gzip", "x-gzip"):
        return GZIP_WBITS
    if coding == "deflate":
        return DEFLATE_WBITS
    raise UnreadableBody(f"Content-Encoding {encoding!r} is not supported; send gzip, deflate or none")


async def read_body(request: Request, *, limit: int, encoding: str | None = None) -> bytes:
    """The body, inflated when `encoding` (default: the Content-Encoding header) says so, at most `limit` bytes."""
    declared = request.headers.get("content-length")
    wbits = wbits_for(request.headers.get("content-encoding", "") if encoding is None else encoding)
    inflater = BoundedInflater(wbits, limit) if wbits is not None else None
    # Incompressible data grows a little when compressed (headers, stored blocks): allow for it.
    wire_limit = limit if inflater is None else limit + limit // 100 + 1024
    if declared is not None and declared.isdigit() and int(declared) > wire_limit:
        raise BodyTooLarge(limit)
    raw = bytearray()
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > wire_limit:
            raise BodyTooLarge(limit)
        if inflater is not None:
            inflater.feed(chunk)
        else:
            raw += chunk
    return inflater.finish() if inflater is not None else bytes(raw)
