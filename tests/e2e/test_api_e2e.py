"""The real service as a process, its stdout parsed as JSON, and its /metrics read by promtool.

Route behaviour (results, error bodies, cursors, stats, metrics) is tested in process: tests/routes."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import pytest

from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e
StartServer = Callable[..., ServerProcess]

EVENT = {"user_id": "user-1", "action": "signup", "source": "web", "metadata": {"email": "secret@example.org"}}


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server()


def test_logs_are_json_with_one_line_per_recorded_event_and_an_access_line(server: ServerProcess) -> None:
    ids = []
    for i in range(3):
        response = server.client.post(
            "/v1/events", json={**EVENT, "action": f"act{i}"}, headers={"X-Request-ID": f"req-{i}"}
        )
        assert response.headers["x-request-id"] == f"req-{i}"
        ids.append(response.json()["event_id"])
    server.client.post("/v1/events", json={**EVENT, "event_id": ids[0]})  # a retry: not a new recording
    access = server.wait_for_log(lambda line: line.get("event") == "http_request" and line.get("request_id") == "req-2")
    assert access, server.stdout
    lines = server.json_lines()  # every stdout line is a JSON object, uvicorn's included
    recorded = [line for line in lines if line["event"] == "event_recorded"]
    assert sorted(line["event_id"] for line in recorded) == sorted(ids)
    for i, line in enumerate(sorted(recorded, key=lambda line: line["action"])):
        assert line["request_id"] == f"req-{i}"
        assert {"event_id", "user_id", "action", "source", "timestamp", "request_id"} <= line.keys()
    assert access[0]["method"] == "POST"
    assert access[0]["route"] == "/v1/events"
    assert access[0]["status"] == 201
    assert access[0]["duration_ms"] >= 0
    assert "secret@example.org" not in "\n".join(server.stdout)


def test_request_id_is_generated_when_absent(server: ServerProcess) -> None:
    response = server.client.post("/v1/events", json=EVENT)
    request_id = response.headers["x-request-id"]
    assert len(request_id) >= 16
    lines = server.wait_for_log(lambda line: line.get("request_id") == request_id and line["event"] == "http_request")
    assert lines


def test_promtool_finds_nothing_wrong_with_the_metrics(server: ServerProcess) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    server.client.post("/v1/events", json=EVENT)
    server.client.get("/nothing")
    text = server.client.get("/metrics").text
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""
    assert result.stderr.strip() == ""
