"""A corpus of hostile requests against the real server: each gets a 4xx problem+json, never a 5xx; the
service answers the next valid request at once; the database holds only the valid events."""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.problems import assert_problem
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e
StartServer = Callable[..., ServerProcess]

VALID = {"user_id": "user-1", "action": "signup", "source": "web", "metadata": {"plan": "pro"}}
HEAD = b'{"user_id":"u","action":"a","source":"s","metadata":'
JSON = {"content-type": "application/json"}
DEEP = 100_000


def body_with_metadata(metadata: bytes) -> bytes:
    return HEAD + metadata + b"}"


def metadata_depth(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"k": value}
    return value


# (name, path, method, headers, body, expected status, expected rejection reason or None)
CORPUS: list[tuple[str, str, str, dict[str, str], bytes, int, str | None]] = [
    ("100k nested arrays in metadata", "/v1/events", "POST", JSON,
     body_with_metadata(b"[" * DEEP + b"]" * DEEP), 400, "malformed_json"),
    ("100k nested objects", "/v1/events", "POST", JSON, b'{"a":' * DEEP + b"1" + b"}" * DEEP, 400, "malformed_json"),
    ("100k nested arrays at the top", "/v1/events/batch", "POST", JSON, b"[" * DEEP + b"]" * DEEP, 400,
     "malformed_json"),
    ("float 1e400", "/v1/events", "POST", JSON, body_with_metadata(b'{"x":1e400}'), 400, "malformed_json"),
    ("float -1e400", "/v1/events", "POST", JSON, body_with_metadata(b'{"x":-1e400}'), 400, "malformed_json"),
    ("integer 10**400", "/v1/events", "POST", JSON, body_with_metadata(b'{"x":1' + b"0" * 400 + b"}"), 400,
     "malformed_json"),
    ("integer 2**64", "/v1/events", "POST", JSON, body_with_metadata(b'{"x":18446744073709551616}'), 422,
     "number_out_of_range"),
    ("NaN", "/v1/events", "POST", JSON, body_with_metadata(b'{"x":NaN}'), 400, "malformed_json"),
    ("Infinity", "/v1/events", "POST", JSON, body_with_metadata(b'{"x":Infinity}'), 400, "malformed_json"),
    ("-Infinity", "/v1/events", "POST", JSON, body_with_metadata(b'{"x":-Infinity}'), 400, "malformed_json"),
    ("lone high surrogate in user_id", "/v1/events", "POST", JSON,
     b'{"user_id":"\\ud800","action":"a","source":"s"}', 400, "malformed_json"),
    ("lone low surrogate in a metadata key", "/v1/events", "POST", JSON,
     body_with_metadata(b'{"\\udc00":1}'), 400, "malformed_json"),
    ("invalid UTF-8", "/v1/events", "POST", JSON, b'{"user_id":"\xff\xfe","action":"a","source":"s"}', 400,
     "malformed_json"),
    ("UTF-8-encoded surrogate", "/v1/events", "POST", JSON, b'{"user_id":"\xed\xa0\x80","action":"a","source":"s"}',
     400, "malformed_json"),
    ("duplicate top-level key", "/v1/events", "POST", JSON,
     b'{"user_id":"u","user_id":"v","action":"a","source":"s"}', 400, "malformed_json"),
    ("duplicate metadata key", "/v1/events", "POST", JSON, body_with_metadata(b'{"a":1,"a":2}'), 400,
     "malformed_json"),
    ("truncated JSON", "/v1/events", "POST", JSON, b'{"user_id": ', 400, "malformed_json"),
    ("array where the event belongs", "/v1/events", "POST", JSON, b'[{"user_id":"u","action":"a","source":"s"}]',
     422, "invalid"),
    ("array where metadata belongs", "/v1/events", "POST", JSON, body_with_metadata(b"[1,2]"), 422, "invalid"),
    ("object where the batch list belongs", "/v1/events/batch", "POST", JSON, b'{"events":{"a":1}}', 422, "invalid"),
    ("string where the event belongs", "/v1/events", "POST", JSON, b'"event"', 422, "invalid"),
    ("empty body", "/v1/events", "POST", JSON, b"", 422, "invalid"),
    ("number where user_id belongs", "/v1/events", "POST", JSON, b'{"user_id":5,"action":"a","source":"s"}', 422,
     "invalid"),
    ("unknown top-level field", "/v1/events", "POST", JSON,
     b'{"user_id":"u","action":"a","source":"s","admin":true}', 422, "invalid"),
    ("unknown batch envelope field", "/v1/events/batch", "POST", JSON, b'{"events":[],"x":1}', 422, "invalid"),
    ("NUL escape in user_id", "/v1/events", "POST", JSON, b'{"user_id":"a\\u0000b","action":"a","source":"s"}',
     422, "invalid"),
    ("NUL escape in a metadata value", "/v1/events", "POST", JSON, body_with_metadata(b'{"k":"a\\u0000"}'), 422,
     "nul_character"),
    ("NUL escape in a metadata key", "/v1/events", "POST", JSON, body_with_metadata(b'{"a\\u0000":1}'), 422,
     "nul_character"),
    ("control character in action", "/v1/events", "POST", JSON, b'{"user_id":"u","action":"a\\u001b[31m",'
     b'"source":"s"}', 422, "invalid"),
    ("timestamp in year 1 with a positive offset", "/v1/events", "POST", JSON,
     b'{"user_id":"u","action":"a","source":"s","timestamp":"0001-01-01T00:00:00+01:00"}', 422, "invalid"),
    ("timestamp in year 9999 with a negative offset", "/v1/events", "POST", JSON,
     b'{"user_id":"u","action":"a","source":"s","timestamp":"9999-12-31T23:59:59-01:00"}', 422, "invalid"),
    ("timestamp far in the future", "/v1/events", "POST", JSON,
     b'{"user_id":"u","action":"a","source":"s","timestamp":"2999-01-01T00:00:00Z"}', 422, "timestamp_in_future"),
    ("timestamp before 2000", "/v1/events", "POST", JSON,
     b'{"user_id":"u","action":"a","source":"s","timestamp":"1999-12-31T23:59:59Z"}', 422, "timestamp_too_old"),
    ("text/plain", "/v1/events", "POST", {"content-type": "text/plain"},
     b'{"user_id":"u","action":"a","source":"s"}', 415, "unsupported_media_type"),
    ("form-encoded", "/v1/events", "POST", {"content-type": "application/x-www-form-urlencoded"},
     b"user_id=u&action=a&source=s", 415, "unsupported_media_type"),
    ("no content type", "/v1/events/batch", "POST", {}, b'{"events":[]}', 415, "unsupported_media_type"),
    ("JSON in Latin-1", "/v1/events", "POST", {"content-type": "application/json; charset=latin-1"},
     b'{"user_id":"u","action":"a","source":"s"}', 415, "unsupported_media_type"),
    ("PUT", "/v1/events", "PUT", JSON, b"{}", 405, None),
    ("DELETE", "/v1/events/batch", "DELETE", {}, b"", 405, None),
    ("PATCH an event", "/v1/events/0190a3e4-5b6c-7d8e-9f00-112233445566", "PATCH", JSON, b"{}", 405, None),
    ("GET the batch route", "/v1/events/batch", "GET", {}, b"", 405, None),
    ("GET an event by a non-UUID id", "/v1/events/..%2f..%2fetc%2fpasswd", "GET", {}, b"", 404, None),
    ("POST to a read route", "/v1/stats", "POST", JSON, b"{}", 405, None),
    ("NUL in a filter (PostgreSQL cannot take it)", "/v1/events?user_id=a%00b", "GET", {}, b"", 422, None),
    ("control character in a filter", "/v1/stats?action=%1B%5B2J", "GET", {}, b"", 422, None),
    ("a number as a date filter", "/v1/events?since=1700000000", "GET", {}, b"", 422, None),
]  # fmt: skip


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db = tmp_path_factory.mktemp("hostile") / "telemetry.db"
    server = ServerProcess(f"sqlite:///{db}", env={"TELEMETRY_REQUEST_BODY_TIMEOUT_S": "1"}).wait_ready()
    yield server
    server.terminate()


def rejected(server: ServerProcess, reason: str) -> float:
    for family in text_string_to_metric_families(server.client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "telemetry_events_rejected_total" and sample.labels["reason"] == reason:
                return sample.value
    return 0.0  # not refused yet for this reason


def stored_user_ids(server: ServerProcess) -> list[str]:
    path = server.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT user_id FROM events ORDER BY seq")]


def assert_still_serving(server: ServerProcess, marker: str) -> None:
    started = time.monotonic()
    response = server.client.post("/v1/events", json={**VALID, "user_id": marker})
    assert response.status_code == 201, response.text
    assert time.monotonic() - started < 5  # "at once": not after some recovery or restart


@pytest.mark.parametrize(
    ("path", "method", "headers", "body", "status", "reason"),
    [pytest.param(*case[1:], id=case[0]) for case in CORPUS],
)
def test_hostile_request_gets_a_4xx_problem_and_the_service_goes_on(
    hostile_server: ServerProcess,
    path: str,
    method: str,
    headers: dict[str, str],
    body: bytes,
    status: int,
    reason: str | None,
    request: pytest.FixtureRequest,
) -> None:
    before = rejected(hostile_server, reason) if reason else 0.0
    response = hostile_server.client.request(method, path, content=body, headers=headers)
    assert_problem(response, status)
    if reason:
        assert rejected(hostile_server, reason) == before + 1
    marker = f"valid-after-{request.node.callspec.id}"[:200]
    assert_still_serving(hostile_server, marker)
    assert stored_user_ids(hostile_server)[-1] == marker
    assert hostile_server.proc.poll() is None


def test_ten_megabyte_body_with_content_length_is_413_before_it_is_read(hostile_server: ServerProcess) -> None:
    before = rejected(hostile_server, "body_too_large")
    response = hostile_server.client.post("/v1/events", content=b"x" * 10_000_000, headers=JSON)
    assert_problem(response, 413)
    assert rejected(hostile_server, "body_too_large") == before + 1
    assert_still_serving(hostile_server, "after-10mb")


def test_ten_megabyte_chunked_body_is_413_counted_as_it_streams(hostile_server: ServerProcess) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(100):
            sent += 100_000
            yield b"[" * 100_000

    response = hostile_server.client.post("/v1/events/batch", content=chunks(), headers=JSON)
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_problem(response, 413)
    assert_still_serving(hostile_server, "after-chunked")


def test_body_of_exactly_the_limit_is_read_and_one_byte_more_is_not(start_server: StartServer) -> None:
    server = start_server(env={"TELEMETRY_REQUEST_MAX_BYTES": "200"})
    event = b'{"user_id":"u","action":"a","source":"s","metadata":{"pad":"'
    at_limit = event + b"x" * (200 - len(event) - 3) + b'"}}'
    assert len(at_limit) == 200
    assert server.client.post("/v1/events", content=at_limit, headers=JSON).status_code == 201
    over = event + b"x" * (201 - len(event) - 3) + b'"}}'
    assert_problem(server.client.post("/v1/events", content=over, headers=JSON), 413)

    def chunked() -> Iterator[bytes]:
        yield over[:100]
        yield over[100:]

    assert_problem(server.client.post("/v1/events", content=chunked(), headers=JSON), 413)


def raw_exchange(server: ServerProcess, data: bytes, timeout_s: float = 10) -> bytes:
    """Send bytes as they are (a lying client) and read what comes back until the server closes or times out."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout_s) as sock:
        sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
                if b"\r\n\r\n" in received and received.endswith(b"}"):
                    break
        except TimeoutError:
            pass
    return received


def test_content_length_longer_than_the_body_is_408_after_the_body_timeout(hostile_server: ServerProcess) -> None:
    body = b'{"user_id":"liar","action":"a","source":"s"}'
    head = f"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body) + 500}"
    started = time.monotonic()
    answer = raw_exchange(hostile_server, head.encode() + b"\r\n\r\n" + body)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"application/problem+json" in answer
    assert time.monotonic() - started < 5
    assert_still_serving(hostile_server, "after-long-content-length")
    assert "liar" not in stored_user_ids(hostile_server)


def test_content_length_shorter_than_the_body_is_a_4xx_and_stores_nothing(hostile_server: ServerProcess) -> None:
    body = b'{"user_id":"liar","action":"a","source":"s"}'
    head = b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n"
    answer = raw_exchange(hostile_server, head + body)
    # The first 20 bytes are a request with truncated JSON; the rest is not HTTP. Whichever the server
    # answers first (our 400 problem, or the HTTP parser's own 400 for the garbage), it is a 400.
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert_still_serving(hostile_server, "after-short-content-length")
    assert "liar" not in stored_user_ids(hostile_server)


def test_only_valid_events_are_stored_after_the_whole_corpus(hostile_server: ServerProcess) -> None:
    # Runs last in this module: every event in the database is one of the valid markers.
    stored = stored_user_ids(hostile_server)
    assert stored
    assert all(user_id.startswith(("valid-after-", "after-")) for user_id in stored), stored
    assert "\x00" not in "".join(stored)


def test_rejections_are_logged_once_without_the_payload(hostile_server: ServerProcess) -> None:
    secret = "very-secret-value"
    response = hostile_server.client.post(
        "/v1/events", json={**VALID, "user_id": "who", "metadata": {"a": secret, "b": "\x00"}}
    )
    assert_problem(response, 422)
    request_id = response.headers["x-request-id"]
    lines = hostile_server.wait_for_log(
        lambda line: line.get("event") == "event_rejected" and line.get("request_id") == request_id
    )
    assert len(lines) == 1
    assert lines[0]["reason"] == "nul_character"
    assert secret not in "\n".join(hostile_server.stdout)
    assert hostile_server.proc.poll() is None


def test_limits_come_from_settings(start_server: StartServer) -> None:
    server = start_server(
        env={
            "TELEMETRY_EVENT_MAX_BYTES": "400",
            "TELEMETRY_METADATA_MAX_DEPTH": "2",
            "TELEMETRY_METADATA_MAX_KEYS": "3",
            "TELEMETRY_TIMESTAMP_MAX_FUTURE_S": "60",
            "TELEMETRY_TIMESTAMP_MIN": "2020-01-01T00:00:00Z",
        }
    )
    cases = [
        ({"metadata": {"pad": "x" * 400}}, "event_too_large"),
        ({"metadata": {"a": {"b": {}}}}, "metadata_too_deep"),
        ({"metadata": {"a": 1, "b": 2, "c": {"d": 4}}}, "metadata_too_many_keys"),
        ({"timestamp": "2019-12-31T23:59:59Z"}, "timestamp_too_old"),
        ({"timestamp": "2999-01-01T00:00:00Z"}, "timestamp_in_future"),
    ]
    for change, reason in cases:
        body = assert_problem(server.client.post("/v1/events", json={**VALID, **change}), 422)
        assert body["reason"] == reason
        assert body["errors"][0]["type"] == reason
        assert rejected(server, reason) == 1
    assert server.client.post("/v1/events", json={**VALID, "metadata": {"a": {"b": 1}, "c": 2}}).status_code == 201


def test_sent_at_corrects_a_client_clock_that_runs_ahead_and_is_stored(hostile_server: ServerProcess) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    ahead = timedelta(days=3)  # the client's clock is three days fast
    event = {**VALID, "user_id": "after-skewed-clock"}
    event["timestamp"] = (now + ahead - timedelta(minutes=5)).isoformat()
    event["sent_at"] = (now + ahead).isoformat()
    created = hostile_server.client.post("/v1/events", json=event)
    assert created.status_code == 201, created.text
    stored = hostile_server.client.get(f"/v1/events/{created.json()['event_id']}").json()
    assert stored["timestamp"].startswith((now + ahead - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M"))  # as sent
    assert stored["sent_at"].startswith((now + ahead).strftime("%Y-%m-%dT%H:%M"))
    # Without sent_at the same timestamp is three days in the future: refused.
    del event["sent_at"]
    body = assert_problem(hostile_server.client.post("/v1/events", json=event), 422)
    assert body["reason"] == "timestamp_in_future"


def test_batch_items_are_held_to_every_rule_one_by_one(hostile_server: ServerProcess) -> None:
    items = [
        {**VALID, "user_id": "after-batch-ok"},
        {**VALID, "unknown": 1},
        {**VALID, "metadata": metadata_depth(17)},
        {**VALID, "metadata": {"k": "\x00"}},
        {**VALID, "timestamp": 1700000000},
        [VALID],
    ]
    before = rejected(hostile_server, "invalid")
    response = hostile_server.client.post("/v1/events/batch", json={"events": items})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["accepted"] + ["invalid"] * 5
    assert [e["field"] for e in results[1]["errors"]] == ["unknown"]
    assert results[2]["errors"][0]["type"] == "metadata_too_deep"
    assert results[3]["errors"][0]["type"] == "nul_character"
    assert [e["field"] for e in results[4]["errors"]] == ["timestamp"]  # a number is not a date-time
    assert rejected(hostile_server, "invalid") == before + 3
