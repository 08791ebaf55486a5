"""The real Segment and PostHog SDKs, pointed at the real service by their host setting alone."""

from __future__ import annotations

import base64
import gzip
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from posthog import Posthog
from posthog.request import batch_post as posthog_batch_post
from prometheus_client.parser import text_string_to_metric_families
from segment.analytics.client import Client as SegmentClient
from segment.analytics.request import post as segment_post

from app.api.access import hash_key
from app.api.compat.sdk_mapping import POSTHOG_NAMESPACE, SEGMENT_NAMESPACE
from tests.support.problems import assert_problem
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e
StartServer = Callable[..., ServerProcess]


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server()


def stored(server: ServerProcess, **filters: str) -> list[dict[str, Any]]:
    response = server.client.get("/v1/events", params={"limit": 1000, **filters})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def metric(server: ServerProcess, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(server.client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def wait_until(condition: Callable[[], bool], timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


class SdkErrors:
    """An SDK's on_error callback that keeps what it is given (not a list: SDKs test `if on_error:`)."""

    def __init__(self) -> None:
        self.errors: list[Any] = []

    def __call__(self, error: Any, batch: Any) -> None:
        self.errors.append(error)

    def __eq__(self, other: object) -> bool:
        return self.errors == other

    def __iter__(self) -> Iterator[Any]:
        return iter(self.errors)

    def __repr__(self) -> str:
        return repr(self.errors)


@pytest.fixture
def segment_client(server: ServerProcess) -> Iterator[Callable[..., tuple[SegmentClient, SdkErrors]]]:
    clients: list[SegmentClient] = []

    def make(**options: Any) -> tuple[SegmentClient, SdkErrors]:
        errors = SdkErrors()
        settings: dict[str, Any] = {"upload_interval": 0.05, "max_retries": 3, "on_error": errors, "timeout": 10}
        settings.update(options)
        client = SegmentClient("segment-write-key", host=server.base_url, **settings)
        clients.append(client)
        return client, errors

    yield make
    for client in clients:
        client.shutdown()


@pytest.fixture
def posthog_client(server: ServerProcess) -> Iterator[Callable[..., tuple[Posthog, SdkErrors]]]:
    clients: list[Posthog] = []

    def make(**options: Any) -> tuple[Posthog, SdkErrors]:
        errors = SdkErrors()
        settings: dict[str, Any] = {"flush_interval": 0.05, "max_retries": 3, "on_error": errors, "timeout": 10}
        settings.update(options)
        client = Posthog("phc_project_key", host=server.base_url, **settings)
        clients.append(client)
        return client, errors

    yield make
    for client in clients:
        client.shutdown()


@pytest.mark.parametrize("compressed", [False, True], ids=["json", "gzip"])
def test_segment_sdk_track_page_screen_are_stored_once_with_mapped_fields(
    server: ServerProcess, segment_client: Any, compressed: bool
) -> None:
    client, errors = segment_client(gzip=compressed)
    _, track = client.track("user-1", "Order Completed", {"revenue": 9.5}, timestamp=None)
    _, page = client.page("user-1", "Docs", "Pricing", {"path": "/pricing"})
    _, screen = client.screen(anonymous_id="anon-2", name="Home")
    client.identify("user-1", {"email": "someone@example.org"})
    client.group("user-1", "group-1")
    client.alias("anon-2", "user-1")
    client.flush()

    assert errors == []
    events = {e["event_id"]: e for e in stored(server)}
    assert set(events) == {track["messageId"], page["messageId"], screen["messageId"]}
    order = events[track["messageId"]]
    assert (order["user_id"], order["action"], order["source"]) == ("user-1", "Order Completed", "analytics-python")
    assert order["metadata"]["revenue"] == 9.5
    assert order["metadata"]["context"]["library"]["name"] == "analytics-python"
    assert order["timestamp"][:23] == track["timestamp"][:23]
    assert order["sent_at"] is not None
    pricing = events[page["messageId"]]
    assert (pricing["action"], pricing["metadata"]["name"], pricing["metadata"]["category"]) == (
        "page_viewed",
        "Pricing",
        "Docs",
    )
    home = events[screen["messageId"]]
    assert (home["user_id"], home["action"], home["metadata"]["name"]) == ("anon-2", "screen_viewed", "Home")
    assert "someone@example.org" not in json.dumps(list(events.values()))


def test_segment_sdk_resending_a_batch_creates_no_duplicates(server: ServerProcess, segment_client: Any) -> None:
    client, errors = segment_client()
    _, first = client.track("user-3", "Signed Up", message_id="signup-user-3")
    client.flush()
    client.track(
        "user-3", "Signed Up", message_id="signup-user-3", timestamp=datetime.fromisoformat(first["timestamp"])
    )
    client.flush()
    # The SDK's own upload function, as its retry loop calls it: same batch, a fresh sentAt each time.
    batch = [{**first, "messageId": str(uuid.uuid4())}]
    assert segment_post("segment-write-key", server.base_url, batch=batch).status_code == 200
    assert segment_post("segment-write-key", server.base_url, gzip=True, batch=batch).status_code == 200

    assert errors == []
    events = stored(server, user_id="user-3")
    assert sorted(e["event_id"] for e in events) == sorted(
        [str(uuid.uuid5(SEGMENT_NAMESPACE, "signup-user-3")), batch[0]["messageId"]]
    )
    assert metric(server, "telemetry_events_duplicate_total") == 2


@pytest.mark.parametrize("compressed", [False, True], ids=["json", "gzip"])
def test_posthog_sdk_captures_are_stored_once_with_mapped_fields(
    server: ServerProcess, posthog_client: Any, compressed: bool
) -> None:
    client, errors = posthog_client(gzip=compressed)
    first = client.capture("clicked buy", distinct_id="user-4", properties={"button": "buy", "$set": {"a": 1}})
    second = client.capture("viewed cart", distinct_id="user-4", properties={"items": 3})
    client.set(distinct_id="user-4", properties={"plan": "pro"})
    client.alias(previous_id="anon-4", distinct_id="user-4")
    client.flush()

    assert errors == []
    events = {e["event_id"]: e for e in stored(server)}
    assert set(events) == {first, second}
    clicked = events[first]
    assert (clicked["user_id"], clicked["action"], clicked["source"]) == ("user-4", "clicked buy", "posthog-python")
    assert clicked["metadata"]["button"] == "buy"
    assert not [k for k in clicked["metadata"] if k.startswith("$") and k not in ("$lib_version", "$os")]
    assert clicked["sent_at"] is not None
    assert events[second]["metadata"]["items"] == 3


def test_posthog_sdk_resending_a_batch_creates_no_duplicates(server: ServerProcess) -> None:
    event = {
        "event": "paid",
        "distinct_id": "user-5",
        "uuid": str(uuid.uuid4()),
        "timestamp": "2026-05-01T10:00:00+00:00",
        "properties": {"$lib": "posthog-python", "amount": 10},
    }
    other = {**event, "uuid": "not-a-uuid-5", "event": "refunded"}
    for compressed in (False, True, False):
        posthog_batch_post("phc_project_key", server.base_url, gzip=compressed, batch=[event, other])
    events = stored(server, user_id="user-5")
    assert sorted(e["event_id"] for e in events) == sorted(
        [event["uuid"], str(uuid.uuid5(POSTHOG_NAMESPACE, "not-a-uuid-5"))]
    )
    assert metric(server, "telemetry_events_duplicate_total") == 4


class HeldWriteLock:
    """A second SQLite connection holding the write lock, so the service's commits wait for it."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=10, check_same_thread=False)
        self.conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


def fill_write_queue(server: ServerProcess, lock_holder: Path, capacity: int) -> tuple[HeldWriteLock, list[Any]]:
    """Make the queue full for real: one request blocked in commit, `capacity` events waiting behind it."""
    lock = HeldWriteLock(lock_holder)
    answers: list[Any] = []

    def post(path: str, body: Any) -> None:
        with httpx.Client(base_url=server.base_url, timeout=60) as client:
            answers.append(client.post(path, json=body))

    def event(n: int) -> dict[str, Any]:
        return {"user_id": "filler", "action": f"fill-{n}", "source": "test"}

    threading.Thread(target=post, args=("/v1/events", event(0)), daemon=True).start()
    batch = {"events": [event(n) for n in range(1, capacity + 1)]}
    deadline = time.monotonic() + 15
    while True:
        # Until the writer thread has taken the first request (then waits for the lock), the batch finds no room.
        time.sleep(0.1)
        answers.clear()
        threading.Thread(target=post, args=("/v1/events/batch", batch), daemon=True).start()
        wait_until(lambda: bool(answers) or metric(server, "telemetry_write_queue_depth") == capacity)
        if not answers:
            return lock, answers
        assert answers[0].status_code == 503, answers[0].text
        assert time.monotonic() < deadline


@pytest.mark.parametrize("sdk", ["segment", "posthog"])
def test_sdk_retries_a_503_from_a_full_write_queue_and_the_event_ends_stored(
    start_server: StartServer, tmp_path: Path, sdk: str
) -> None:
    capacity = 2
    server = start_server(env={"TELEMETRY_WRITE_QUEUE_MAX": str(capacity), "TELEMETRY_SQLITE_BUSY_TIMEOUT_MS": "60000"})
    lock, fillers = fill_write_queue(server, tmp_path / "telemetry.db", capacity)
    errors = SdkErrors()
    client: Any
    if sdk == "segment":
        client = SegmentClient(
            "wk",
            host=server.base_url,
            upload_interval=0.05,
            max_retries=3,
            on_error=errors,
            timeout=10,
            max_rate_limit_duration=20,  # a 503 with Retry-After is retried until this budget is spent
        )
        _, message = client.track("user-6", "Retried")
        event_id = message["messageId"]
    else:
        client = Posthog(
            "phc_key", host=server.base_url, flush_interval=0.05, max_retries=3, on_error=errors, timeout=10
        )
        event_id = client.capture("Retried", distinct_id="user-6")
    flushed = threading.Thread(target=client.flush, daemon=True)
    flushed.start()
    try:
        route = "/v1/batch" if sdk == "segment" else "/batch/"
        wait_until(lambda: metric(server, "http_requests_total", route=route, status="503") >= 1)
        assert stored(server, user_id="user-6") == []
    finally:
        lock.release()
    flushed.join(timeout=30)
    assert not flushed.is_alive()
    client.shutdown()

    assert errors == []
    assert [e["event_id"] for e in stored(server, user_id="user-6")] == [event_id]
    assert metric(server, "telemetry_write_queue_full_total") >= 1
    wait_until(lambda: len(fillers) == 2)
    assert sorted(r.status_code for r in fillers) == [200, 201]
    assert len(stored(server, user_id="filler")) == capacity + 1


def test_segment_single_call_routes_store_and_acknowledge(server: ServerProcess) -> None:
    auth = ("segment-write-key", "")
    track = {"userId": "user-7", "event": "Played", "messageId": "m-1", "timestamp": "2026-05-01T10:00:00Z"}
    assert server.client.post("/v1/track", json=track, auth=auth).json()["accepted"] == 1
    page = {"anonymousId": "anon-7", "name": "Landing", "writeKey": "segment-write-key"}
    assert server.client.post("/v1/page", json=page).status_code == 200
    assert server.client.post("/v1/screen", json={"userId": "user-7", "name": "Feed"}).status_code == 200
    identify = server.client.post("/v1/identify", json={"userId": "user-7", "traits": {"email": "a@b.c"}})
    assert identify.json() == {"success": True, "accepted": 0, "duplicate": 0, "ignored": 1, "rejected": []}
    imported = server.client.post("/v1/import", json={"batch": [{**track, "type": "track"}]})
    assert imported.json()["duplicate"] == 1
    # analytics.js: one letter per call type, text/plain bodies, the write key in each event
    short = {**track, "writeKey": "wk"}
    headers = {"content-type": "text/plain"}
    assert server.client.post("/v1/t", content=json.dumps(short), headers=headers).json()["duplicate"] == 1
    assert server.client.post("/v1/b", json={"batch": [{**short, "type": "track"}]}).json()["duplicate"] == 1
    assert server.client.post("/v1/i", json={"userId": "user-7"}).json()["ignored"] == 1

    actions = sorted((e["user_id"], e["action"], e["source"]) for e in stored(server))
    assert actions == [
        ("anon-7", "page_viewed", "segment"),
        ("user-7", "Played", "segment"),
        ("user-7", "screen_viewed", "segment"),
    ]


def test_segment_rejected_message_is_a_400_naming_it_while_valid_ones_are_stored(server: ServerProcess) -> None:
    batch = {
        "batch": [
            {"type": "track", "userId": "user-8", "event": "Kept", "messageId": "keep-1"},
            {"type": "track", "event": "No user", "messageId": "bad-1"},
            {"type": "track", "userId": "user-8", "event": "Huge", "properties": {"blob": "x" * 40_000}},
            {"type": "identify", "userId": "user-8"},
        ]
    }
    body = assert_problem(server.client.post("/v1/batch", json=batch), 400)
    assert (body["accepted"], body["ignored"]) == (1, 1)
    assert [(r["index"], r["id"]) for r in body["rejected"]] == [(1, "bad-1"), (2, None)]
    assert "userId or anonymousId is required" in body["rejected"][0]["reason"]
    assert "the most is 32768" in body["rejected"][1]["reason"]
    assert body["code"] == "events-rejected"
    assert body["message"] == body["detail"]
    assert [e["action"] for e in stored(server)] == ["Kept"]
    assert metric(server, "telemetry_events_rejected_total", reason="invalid") == 1
    assert metric(server, "telemetry_events_rejected_total", reason="event_too_large") == 1


def test_segment_bodies_past_the_documented_limits_are_400(server: ServerProcess) -> None:
    big = {"batch": [{"type": "track", "userId": "u", "event": "e", "properties": {"p": "x" * 30_000}}] * 18}
    assert "512000" in assert_problem(server.client.post("/v1/batch", json=big), 400)["detail"]
    single = {"userId": "u", "event": "e", "properties": {"p": "x" * 33_000}}
    assert_problem(server.client.post("/v1/track", json=single), 400)
    assert_problem(server.client.post("/v1/batch", content=b"{not json"), 400)
    assert_problem(server.client.post("/v1/batch", json={"batch": "nope"}), 400)
    assert stored(server) == []


def test_posthog_js_forms_gzip_js_base64_form_and_single_capture(server: ServerProcess) -> None:
    def event(name: str) -> dict[str, Any]:
        return {"event": name, "distinct_id": "user-9", "properties": {"token": "phc_key", "$lib": "web"}, "offset": 5}

    gz = gzip.compress(json.dumps([event("gzip-js")]).encode())
    answer = server.client.post(
        "/e/",
        params={"compression": "gzip-js", "_": "1777000000000"},
        content=gz,
        headers={"content-type": "text/plain"},
    )
    assert answer.json()["status"] == 1
    form = {"data": base64.b64encode(json.dumps(event("form")).encode()).decode()}
    assert server.client.post("/i/v0/e/", data=form).status_code == 200
    assert server.client.post("/capture/", json={"api_key": "phc_key", **event("single")}).status_code == 200

    events = {e["action"]: e for e in stored(server, user_id="user-9")}
    assert set(events) == {"gzip-js", "form", "single"}
    assert events["gzip-js"]["timestamp"] == "2026-04-24T03:06:39.995000Z"  # sent time `_` minus offset 5 ms
    assert all(e["source"] == "web" and "token" not in e["metadata"] for e in events.values())


def test_posthog_decompression_bomb_is_413_and_lz64_is_415(server: ServerProcess) -> None:
    bomb = gzip.compress(b" " * (64 * 1024 * 1024))
    assert len(bomb) < 100_000
    answer = server.client.post("/batch/", content=bomb, headers={"content-encoding": "gzip"})
    assert "8388608" in assert_problem(answer, 413)["detail"]
    assert_problem(server.client.post("/e/", params={"compression": "lz64"}, content=b"abc"), 415)
    assert_problem(
        server.client.post("/batch/", content=b"\x1f\x8bnot gzip", headers={"content-encoding": "gzip"}), 400
    )
    assert server.client.get("/healthz").status_code == 200


def test_more_messages_than_batch_max_events_is_refused_whole(start_server: StartServer) -> None:
    server = start_server(env={"TELEMETRY_BATCH_MAX_EVENTS": "3"})
    segment_batch = {"batch": [{"type": "track", "userId": "u", "event": f"e{n}"} for n in range(4)]}
    assert "the most is 3" in assert_problem(server.client.post("/v1/batch", json=segment_batch), 400)["detail"]
    posthog_batch = {"batch": [{"event": f"e{n}", "distinct_id": "u"} for n in range(4)]}
    assert_problem(server.client.post("/batch/", json=posthog_batch), 413)
    assert server.client.post("/batch/", json={"batch": posthog_batch["batch"][:3]}).json()["accepted"] == 3
    assert len(stored(server)) == 3


HOSTILE: list[tuple[str, Any]] = [
    ("/v1/batch", []),
    ("/v1/batch", {"batch": [1, "x", None, [], {"type": None}]}),
    ("/v1/track", {"userId": {"a": 1}, "event": ["x"], "messageId": 10**40, "timestamp": 5}),
    ("/v1/page", {"anonymousId": True, "properties": "nope", "context": "nope"}),
    ("/v1/batch", {"batch": [{"type": "track", "userId": "u", "event": "e", "sentAt": []}], "sentAt": {}}),
    (
        "/v1/batch",
        {"batch": [{"type": "track", "userId": "u", "event": "e", "timestamp": "0001-01-01T00:00:00+01:00"}]},
    ),
    ("/v1/track", {"userId": "u", "event": "e", "properties": {"big": 10**30, "deep": [[[[[]]]]]}}),
    ("/batch/", "just a string"),
    (
        "/batch/",
        {"batch": [{"event": 3}, {"event": "e", "distinct_id": {}}, {"event": "e", "distinct_id": "u", "offset": "1"}]},
    ),
    ("/capture/", {"event": "e", "distinct_id": "u", "properties": [], "uuid": ["x"]}),
    ("/e/", [{"event": "e", "distinct_id": "u", "timestamp": "garbage", "sent_at": 7}]),
    ("/i/v0/e/", {"event": "e", "distinct_id": "u", "offset": 1e300}),
]


def test_hostile_sdk_bodies_get_a_clear_4xx_or_2xx_never_5xx(server: ServerProcess) -> None:
    raw = [
        ("/v1/track", b'{"userId": "u", "event": "e", "properties": {"x": "\\ud800"}}'),
        ("/batch/", b'{"batch": [{"event": "e", "distinct_id": "\\udc00"}]}'),
    ]
    for path, body in [*((p, json.dumps(b).encode()) for p, b in HOSTILE), *raw]:
        answer = server.client.post(path, content=body)
        assert 200 <= answer.status_code < 500, (path, body, answer.text)
        if answer.status_code >= 400:
            assert_problem(answer, answer.status_code)
    assert not [line for line in server.stderr if "Traceback" in line]


INGEST_KEY = "sdk-ingest-key-0123456789"
READ_KEY = "sdk-read-key-0123456789"


def test_sdk_write_keys_are_ingest_scope_api_keys(start_server: StartServer) -> None:
    keys = f"sdk:{hash_key(INGEST_KEY)}:ingest,reader:{hash_key(READ_KEY)}:read"
    server = start_server(env={"TELEMETRY_API_KEYS": keys})
    statuses: dict[str, list[int]] = {}

    for name, key in (("ingest", INGEST_KEY), ("unknown", "not-a-key"), ("read", READ_KEY)):
        errors = SdkErrors()
        segment = SegmentClient(key, host=server.base_url, upload_interval=0.05, max_retries=0, on_error=errors)
        segment.track(f"user-{name}", "Segment Keyed")
        segment.shutdown()
        posthog = Posthog(key, host=server.base_url, flush_interval=0.05, max_retries=0, on_error=errors)
        posthog.capture("PostHog Keyed", distinct_id=f"user-{name}")
        posthog.shutdown()
        statuses[name] = [getattr(e, "status", repr(e)) for e in errors]
    by_body = {"writeKey": INGEST_KEY, "batch": [{"type": "track", "userId": "user-body", "event": "Body Key"}]}
    assert server.client.post("/v1/batch", json=by_body).status_code == 200
    no_key = assert_problem(server.client.post("/v1/batch", json={"batch": []}), 401)
    assert "write key" in no_key["detail"]

    assert statuses == {"ingest": [], "unknown": [401, 401], "read": [403, 403]}
    listed = server.client.get("/v1/events", headers={"Authorization": f"Bearer {READ_KEY}"}).json()["items"]
    assert sorted((e["user_id"], e["action"]) for e in listed) == [
        ("user-body", "Body Key"),
        ("user-ingest", "PostHog Keyed"),
        ("user-ingest", "Segment Keyed"),
    ]


def test_posthog_uncompressed_batch_over_the_general_body_limit_is_taken(start_server: StartServer) -> None:
    server = start_server(env={"TELEMETRY_REQUEST_MAX_BYTES": "100000"})
    events = [{"event": "big", "distinct_id": "user-big", "uuid": str(uuid.uuid4()), "properties": {"p": "x" * 2000}}]
    body = {"api_key": "k", "batch": events * 1 + [{**events[0], "uuid": str(uuid.uuid4())} for _ in range(99)]}
    assert len(json.dumps(body)) > 200_000
    assert server.client.post("/batch/", json=body).json()["accepted"] == 100
    assert_problem(server.client.post("/v1/batch", json={"batch": [], "pad": "x" * 200_000}), 413)


def test_cors_opens_the_sdk_routes_to_configured_browser_origins(start_server: StartServer) -> None:
    server = start_server(env={"TELEMETRY_CORS_ORIGINS": "https://shop.example"})
    event = {"event": "clicked", "distinct_id": "user-cors", "properties": {"token": "k"}}
    headers = {"Origin": "https://shop.example", "Content-Type": "text/plain"}
    answer = server.client.post("/e/", content=json.dumps(event), headers=headers)
    assert answer.headers["access-control-allow-origin"] == "https://shop.example"
    track = {"userId": "user-cors", "event": "Clicked", "writeKey": "k"}
    answer = server.client.post("/v1/t", content=json.dumps(track), headers=headers)
    assert answer.headers["access-control-allow-origin"] == "https://shop.example"
    other = server.client.post(
        "/v1/t", content=json.dumps(track), headers={**headers, "Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in other.headers
