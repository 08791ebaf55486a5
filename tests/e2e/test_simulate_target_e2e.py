"""`python -m app simulate --target`: the simulator as a load generator against the real service."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.server import ServerProcess, free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _send(target: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", "simulate", "--events", "3000", "--users", "60", "--days", "7",
         "--seed", "8", "--target", target, *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def test_simulated_stream_is_sent_in_batches_and_every_event_is_accepted(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server()
    done = _send(server.base_url, "--batch-size", "500")
    assert done.returncode == 0, done.stderr
    assert "accepted 3000, rejected 0" in done.stderr
    assert "send to" in done.stderr  # the progress bar
    assert server.client.get("/v1/stats").json()["total"] == 3000
    page = server.client.get("/v1/events", params={"limit": 500}).json()
    assert {event["metadata"]["simulated"] for event in page["items"]} == {True}
    # The same stream again: every event is recognised as already stored, none is stored twice.
    again = _send(server.base_url)
    assert "duplicate 3000" in again.stderr
    assert server.client.get("/v1/stats").json()["total"] == 3000


def test_an_unreachable_target_fails_with_a_message() -> None:
    done = _send(f"http://127.0.0.1:{free_port()}", "--quiet")
    assert done.returncode == 1
    assert "cannot reach" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_api_key_is_sent_when_the_service_requires_one(start_server: Callable[..., ServerProcess]) -> None:
    from app.api.access import hash_key

    key = "ingest-key-0123456789"
    server = start_server(env={"TELEMETRY_API_KEYS": f"loadgen:{hash_key(key)}:ingest"})
    refused = _send(server.base_url, "--quiet")
    assert refused.returncode == 1
    assert "rejected (HTTP 401)" in refused.stderr
    done = _send(server.base_url, "--quiet", "--api-key", key)
    assert done.returncode == 0, done.stderr
    assert "accepted 3000, rejected 0" in done.stderr
