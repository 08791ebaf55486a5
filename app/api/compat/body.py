"""Request bodies as SDKs send them: plain, gzip or deflate, read with a cap on the decompressed size.

The body is streamed and inflated a chunk at a time with zlib's max_length, so a decompression bomb
stops at the cap (413 or 400, the caller's choice) having used at most the cap in memory.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

GZIP_WBITS = 16 + zlib.MAX_WBITS
DEFLATE_WBITS = zlib.MAX_WBITS


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit} bytes (after decompression)")
        self.limit = limit


class UnreadableBody(Exception):
    """Compressed data that does not inflate, or an encoding we do not speak."""


# Inflated at most this much per zlib call, so a caller counting the output (on_output) sees it grow in steps.
_STEP = 1024 * 1024


class BoundedInflater:
    """Incremental zlib/gzip decoder that refuses to produce more than `limit` bytes.

    on_output, when given, is told the size of each piece before it is kept, and may refuse it by raising.
    """

    def __init__(self, wbits: int, limit: int, on_output: Callable[[int], None] | None = None) -> None:
        self._wbits = wbits
        self._limit = limit
        self._decoder = zlib.decompressobj(wbits)
        self._out = bytearray()
        self._on_output = on_output

    def feed(self, data: bytes) -> None:
        try:
            while True:
                room = min(self._limit - len(self._out) + 1, _STEP)
                piece = self._decoder.decompress(data, room)
                if self._on_output is not None:
                    self._on_output(len(piece))
                self._out += piece
                if len(self._out) > self._limit:
                    raise BodyTooLarge(self._limit)
                if self._decoder.unconsumed_tail:
                    data = self._decoder.unconsumed_tail
                elif self._decoder.eof and self._decoder.unused_data:
                    # gzip allows several members one after another; each starts a new stream.
                    data = self._decoder.unused_data
                    self._decoder = zlib.decompressobj(self._wbits)
                elif len(piece) == room and not self._decoder.eof:
                    data = b""  # all input taken, but zlib may hold more output than one step
                else:
                    break
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
