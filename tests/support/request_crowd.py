"""A crowd of clients in a process of its own (so it does not share a GIL with the test that measures):
`python -m tests.support.request_crowd PORT PATH BODY_FILE CONNECTIONS [HEADER: VALUE ...]` sends the body on that
many connections at once and prints the answers' status codes as one JSON list."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path


async def send_crowd(port: int, path: str, body: bytes, connections: int, headers: list[str]) -> list[int]:
    head = "".join(f"{h}\r\n" for h in headers)
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body

    async def one() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(request)
            await writer.drain()
            status_line = await asyncio.wait_for(reader.readline(), 120)
            await reader.read()
            return int(status_line.split()[1]) if status_line else 0
        except (ConnectionError, TimeoutError):
            return 0
        finally:
            writer.close()

    return await asyncio.gather(*(one() for _ in range(connections)))


if __name__ == "__main__":
    port, path, body_file, connections, *extra = sys.argv[1:]
    statuses = asyncio.run(send_crowd(int(port), path, Path(body_file).read_bytes(), int(connections), extra))
    print(json.dumps(statuses))
