"""Optional OpenTelemetry tracing: off by default; on, trace ids reach the log lines, the latency histogram's
exemplars (and through them Prometheus), and the configured exporter."""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.prometheus import PrometheusProcess, wait_until
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]
StartServer = Callable[..., ServerProcess]

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"
OPENMETRICS = {"accept": "application/openmetrics-text; version=1.0.0"}
TRACING_ON = {"TELEMETRY_TRACING_ENABLED": "true", "OTEL_TRACES_EXPORTER": "none"}


def _traceparent(sampled: bool = True) -> dict[str, str]:
    return {"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN_ID}-{'01' if sampled else '00'}"}


def _record(server: ServerProcess, headers: dict[str, str] | None = None) -> str:
    event = {"user_id": "u-1", "action": "click", "source": "web", "metadata": {}}
    response = server.client.post("/v1/events", json=event, headers=headers or {})
    assert response.status_code == 201, response.text
    return str(response.json()["event_id"])


def _lines_of(server: ServerProcess, event_id: str) -> list[dict[str, Any]]:
    """The event_recorded line of event_id and the http_request line of the same request."""
    (recorded,) = server.wait_for_log(lambda line: line.get("event_id") == event_id)
    request_id = recorded["request_id"]
    (access,) = server.wait_for_log(lambda line: line["event"] == "http_request" and line["request_id"] == request_id)
    return [recorded, access]


def _exemplars(server: ServerProcess) -> list[dict[str, str]]:
    text = server.client.get("/metrics", headers=OPENMETRICS).text
    found = []
    for line in text.splitlines():
        if line.startswith("http_request_duration_seconds_bucket{") and 'route="/v1/events"' in line and " # {" in line:
            found.append(dict(re.findall(r'(\w+)="([^"]*)"', line.split(" # ", 1)[1])))
    return found


def test_tracing_is_off_by_default_and_leaves_logs_and_metrics_as_they_were(start_server: StartServer) -> None:
    server = start_server()
    for line in _lines_of(server, _record(server, _traceparent())):
        assert "trace_id" not in line
        assert "span_id" not in line
    response = server.client.get("/metrics", headers=OPENMETRICS)
    assert response.headers["content-type"].startswith("text/plain")
    assert " # {" not in response.text


def test_incoming_trace_reaches_the_log_lines_and_the_latency_exemplar(start_server: StartServer) -> None:
    server = start_server(env=TRACING_ON)
    lines = _lines_of(server, _record(server, _traceparent()))
    assert {line["trace_id"] for line in lines} == {TRACE_ID}
    (span_id,) = {line["span_id"] for line in lines}
    assert re.fullmatch(r"[0-9a-f]{16}", span_id)
    assert span_id != PARENT_SPAN_ID  # the service's own server span, child of the caller's
    assert {"trace_id": TRACE_ID, "span_id": span_id} in _exemplars(server)


def test_a_request_without_traceparent_starts_its_own_trace(start_server: StartServer) -> None:
    server = start_server(env=TRACING_ON)
    first, second = (_lines_of(server, _record(server))[1]["trace_id"] for _ in range(2))
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second


def test_an_unsampled_trace_is_logged_but_leaves_no_exemplar(start_server: StartServer) -> None:
    server = start_server(env=TRACING_ON)
    lines = _lines_of(server, _record(server, _traceparent(sampled=False)))
    assert {line["trace_id"] for line in lines} == {TRACE_ID}
    assert all(exemplar["trace_id"] != TRACE_ID for exemplar in _exemplars(server))


def test_console_exporter_writes_the_request_span_to_stderr_not_stdout(start_server: StartServer) -> None:
    server = start_server(env={**TRACING_ON, "OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "telemetry-e2e"})
    _record(server, _traceparent())
    wait_until(lambda: '"name": "POST /v1/events"' in "\n".join(server.stderr), 10, lambda: "\n".join(server.stderr))
    stderr = "\n".join(server.stderr)
    assert f'"trace_id": "0x{TRACE_ID}"' in stderr
    assert '"service.name": "telemetry-e2e"' in stderr
    assert '"http.route": "/v1/events"' in stderr
    server.json_lines()  # stdout stays one JSON object a line


def test_prometheus_stores_the_exemplar_and_leads_back_to_the_trace(start_server: StartServer, tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus not on PATH (Debian package prometheus, listed in .ci/apt-packages.txt)")
    server = start_server(env=TRACING_ON)
    trace_id = uuid.uuid4().hex
    _record(server, {"traceparent": f"00-{trace_id}-{PARENT_SPAN_ID}-01"})
    prom = PrometheusProcess(
        binary, tmp_path / "prometheus", f"127.0.0.1:{server.port}", extra_args=("--enable-feature=exemplar-storage",)
    ).wait_ready()
    try:

        def stored_trace_ids() -> set[str]:
            query = 'http_request_duration_seconds_bucket{route="/v1/events"}'
            response = prom.client.get("/api/v1/query_exemplars", params={"query": query, "start": 0, "end": 1e10})
            series = response.json()["data"]
            return {ex["labels"]["trace_id"] for s in series for ex in s["exemplars"]}

        found = wait_until(lambda: trace_id in stored_trace_ids(), 20, lambda: "no exemplar: " + prom.log_tail())
        assert found
    finally:
        prom.stop()
