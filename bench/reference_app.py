"""The framework's own ceiling: a bare FastAPI app with the service's request model and nothing else.

No I/O, no logs, no metrics; the same uvicorn server settings as `python -m app serve`. The ingest benchmark
loads this and the service side by side, so the ratio says what the service's own work costs.
"""

from __future__ import annotations

import argparse
import uuid

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from app.api.schemas import EventIn

app = FastAPI(title="reference")


class BatchIn(BaseModel):
    events: list[EventIn]


@app.post("/v1/events", status_code=201)
async def record_event(event: EventIn) -> dict[str, str]:
    return {"event_id": str(event.event_id or uuid.uuid4()), "user_id": event.user_id, "action": event.action}


@app.post("/v1/events/batch")
async def record_batch(batch: BatchIn) -> dict[str, int]:
    return {"accepted": len(batch.events), "duplicate": 0, "conflict": 0, "invalid": 0}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_config=None, access_log=False, server_header=False)


if __name__ == "__main__":
    main()
