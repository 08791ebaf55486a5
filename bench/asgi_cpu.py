"""Event-loop CPU per request, in process: the ASGI app driven directly, no network, no wrk.

`python -m bench.asgi_cpu [--requests N] [--target service|reference] [--batch K]` sends N single-event POSTs
(or, with --batch K, N batches of K events) through the app with 32 in flight and prints the CPU time of the
event-loop thread per request and per event (and of the whole process). On a shared machine this moves far
less than wall-clock throughput, so it is the figure to compare when changing the request path. Not run by
`python -m bench` (its name does not end in _bench).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

BODY = json.dumps(
    {"user_id": "user-1", "action": "page_view", "source": "web", "metadata": {"path": "/home", "ms": 12}}
).encode()


def batch_body(events: int) -> bytes:
    from bench.ingest_bench import event_body

    return json.dumps({"events": [event_body(n) for n in range(events)]}).encode()


def _scope(path: str = "/v1/events", body: bytes = BODY) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
        "state": {},
    }


async def _one(app: Any, path: str = "/v1/events", body: bytes = BODY) -> int:
    delivered = False
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)  # no disconnect while the app works
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(_scope(path, body), receive, send)
    return status[0]


async def measure(app: Any, requests: int, with_lifespan: bool, batch: int = 0) -> dict[str, float]:
    lifespan = app.router.lifespan_context(app) if with_lifespan else None
    if lifespan is not None:
        await lifespan.__aenter__()
    path, body = ("/v1/events/batch", batch_body(batch)) if batch else ("/v1/events", BODY)
    try:
        in_flight = asyncio.Semaphore(32)

        async def guarded() -> int:
            async with in_flight:
                return await _one(app, path, body)

        for _ in range(200):  # warm-up: imports, caches, first statements
            await guarded()
        process_cpu, loop_cpu, wall = time.process_time(), time.thread_time(), time.perf_counter()
        statuses = await asyncio.gather(*[guarded() for _ in range(requests)])
        process_cpu, loop_cpu = time.process_time() - process_cpu, time.thread_time() - loop_cpu
        wall = time.perf_counter() - wall
    finally:
        if lifespan is not None:
            await lifespan.__aexit__(None, None, None)
    if not set(statuses) <= {200, 201}:
        raise RuntimeError(f"unexpected statuses {set(statuses)}")
    result = {
        "loop_cpu_us_per_request": loop_cpu / requests * 1e6,
        "process_cpu_us_per_request": process_cpu / requests * 1e6,
        "requests_per_s": requests / wall,
    }
    if batch:
        events = requests * batch
        result |= {
            "loop_cpu_us_per_event": loop_cpu / events * 1e6,
            "process_cpu_us_per_event": process_cpu / events * 1e6,
            "events_per_s": events / wall,
        }
    return result


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m bench.asgi_cpu", description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--target", choices=("service", "reference"), default="service")
    parser.add_argument("--batch", type=int, default=0, help="events per request to /v1/events/batch (0: single POSTs)")
    parser.add_argument(
        "--writer-process", action="store_true", help="commit through a writer process, as `serve` does on SQLite"
    )
    args = parser.parse_args(argv)
    if args.target == "reference":
        from bench.reference_app import app

        result = uvloop.run(measure(app, args.requests, with_lifespan=False, batch=args.batch))
    else:
        folder = Path(tempfile.mkdtemp(prefix="telemetry-asgi-cpu-"))
        os.environ["TELEMETRY_DATABASE_URL"] = f"sqlite:///{folder / 'events.db'}"
        writer = None
        if args.writer_process:
            from app.repository.writer_process import WriterSupervisor

            writer = WriterSupervisor()
            writer.start()
            os.environ["TELEMETRY_WRITER_SOCKET"] = str(writer.socket_path)
        real_stdout = sys.stdout
        with open(os.devnull, "w") as devnull:
            sys.stdout = devnull  # the service's JSON lines are written, to nowhere
            try:
                from app.main import create_app

                result = uvloop.run(measure(create_app(), args.requests, with_lifespan=True, batch=args.batch))
            finally:
                sys.stdout = real_stdout
                if writer is not None:
                    writer.stop()
    print(f"{args.target}: " + ", ".join(f"{k} {v:,.0f}" for k, v in result.items()))
    return result


if __name__ == "__main__":
    main()
