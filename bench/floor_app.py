"""The HTTP server's own floor: a plain ASGI app under the same uvicorn settings as the reference and the
service, answering every POST 201 with a fixed JSON body the size of the service's answer, after reading
the request body. No framework, no validation, no I/O. What its requests cost (uvicorn, httptools, uvloop
and the kernel's loopback) every other server in the ingest benchmark pays too, so the CPU a request above
this floor is each app's own: the reference's FastAPI route against the service's whole ingest path.
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn

# The size of a single POST's answer from the service (an event of the benchmark's kind, every field).
BODY = (
    b'{"event_id":"01a23bf6-c34d-77b8-9f57-d6bbfe2645f6","user_id":"user-7919","action":"click",'
    b'"source":"ios","timestamp":"2026-12-03T12:52:37.325774Z","received_at":"2026-12-03T12:52:37.325774Z",'
    b'"sent_at":null,"metadata":{"path":"/page/1","ms":1,"ab":false}}'
)
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return  # lifespan: nothing to start
    more_body = True
    while more_body:
        message = await receive()
        more_body = message.get("more_body", False)
    status = 201 if scope["method"] == "POST" else 200  # GET /openapi.json: the benchmark's readiness probe
    await send({"type": "http.response.start", "status": status, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, log_config=None, access_log=False, server_header=False, lifespan="off"
    )


if __name__ == "__main__":
    main()
