"""Property: the lean ingest path (the edge's handler, lean_ingest on) and the documented schema path (the
FastAPI route, lean_ingest off) accept and refuse exactly the same inputs, with the same status, headers,
body (modulo generated ids and server clocks) and the same metrics.

Both apps have the same API keys, CORS origin and limits, and see the same requests (with or without the
right key and origin) in the same order, so a stored event makes the same later duplicate or conflict in both."""

from __future__ import annotations

import json
from collections.abc import Iterator
from hashlib import sha256
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_hostile_input import CORPUS
from tests.support.event_strategies import NAME_TEXT, event_bodies, metadata
from tests.support.in_process import InProcessClient, in_process_app

INGEST_KEY, READ_KEY = "ingest-secret", "read-secret"
SETTINGS = {
    "request_max_bytes": 48_000,
    "event_max_bytes": 4_000,
    "batch_max_events": 4,
    "api_keys": f"ingester:{sha256(INGEST_KEY.encode()).hexdigest()}:ingest,"
    f"reader:{sha256(READ_KEY.encode()).hexdigest()}:read",
    "cors_origins": "https://app.example",
}
# Mostly the right key, so that most requests get past the edge to the body.
AUTHORIZATIONS = [f"Bearer {INGEST_KEY}"] * 8 + [f"Bearer {READ_KEY}", "Bearer wrong", "Basic eDp5", None]
ORIGINS = [None, None, "https://app.example", "https://elsewhere.example"]
JSON = {"content-type": "application/json"}
# A few fixed ids, so that some requests repeat an event (duplicate) or change it (conflict).
KNOWN_IDS = [f"0190a3e4-5b6c-7d8e-9f00-{n:012d}" for n in range(3)]
COMPARED_METRICS = (
    "telemetry_events_rejected_total",
    "telemetry_events_duplicate_total",
    "telemetry_user_actions_total",
    "http_requests_total",
)


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[InProcessClient, InProcessClient]]:
    lean_dir, route_dir = tmp_path_factory.mktemp("lean"), tmp_path_factory.mktemp("route")
    with (
        in_process_app(lean_dir, lean_ingest=True, **SETTINGS) as lean,
        in_process_app(route_dir, lean_ingest=False, **SETTINGS) as route,
    ):
        yield lean, route


wrong_values = (
    st.integers()
    | st.booleans()
    | st.none()
    | st.lists(st.integers(), max_size=2)
    | st.text(max_size=5)
    | st.just("")
    | st.just("x" * 300)
    | st.just("not-a-uuid")
    | st.just("2026-01-01T10:00:00")  # naive
    | st.just("2026-01-01T10:00:00Z")
    | st.just({"k": "v"})
)


@st.composite
def events(draw: st.DrawFn) -> Any:
    """An event item: valid, or valid but for a field removed, mistyped, added, or pushed past a limit."""
    body: dict[str, Any] = draw(event_bodies())
    if draw(st.booleans()):
        body.pop("event_id")
    elif draw(st.integers(0, 3)) == 0:
        body["event_id"] = draw(st.sampled_from(KNOWN_IDS))
    if draw(st.booleans()):
        body.pop("timestamp")
    mutation = draw(st.integers(0, 7))
    if mutation == 1:
        body[draw(st.sampled_from(sorted(body)))] = draw(wrong_values)
    elif mutation == 2:
        body.pop(draw(st.sampled_from(sorted(body))))
    elif mutation == 3:
        body[draw(st.text(NAME_TEXT, min_size=1, max_size=8))] = draw(wrong_values)
    elif mutation == 4:
        deep: Any = 1
        for _ in range(draw(st.integers(14, 20))):
            deep = {"k": deep}
        body["metadata"] = deep
    elif mutation == 5:
        body["metadata"] = {"big": "x" * draw(st.sampled_from([3_900, 5_000]))}
    elif mutation == 6:
        body["metadata"] = draw(st.sampled_from([{"x": 2**64}, {"x": "a\x00b"}, {"\x00": 1}, [1, 2], "text"]))
    if draw(st.integers(0, 9)) == 0:
        return draw(wrong_values)  # not an object at all
    return body


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


requests = st.one_of(
    st.tuples(st.just("/v1/events"), st.just(JSON), events().map(_json)),
    st.tuples(
        st.just("/v1/events/batch"),
        st.just(JSON),
        st.one_of(
            st.lists(events(), max_size=6).map(lambda items: _json({"events": items})),
            st.fixed_dictionaries({"events": st.lists(events(), max_size=2)}, optional={"extra": metadata}).map(_json),
            events().map(_json),
        ),
    ),
    st.sampled_from(
        [
            (path, headers, body)
            for _name, path, method, headers, body, _status, _reason in CORPUS
            if method == "POST" and path in ("/v1/events", "/v1/events/batch")
        ]
    ),
    st.tuples(
        st.sampled_from(["/v1/events", "/v1/events/batch"]),
        st.sampled_from([JSON, {"content-type": "application/problem+json; charset=UTF-8"}, {}]),
        st.sampled_from([b"", b"null", b"[]", b"{}", b'{"events": null}', b"x" * 50_000, b"\xff", b'{"a": 1e400}']),
    ),
)


def _masked(sent: bytes, answer: httpx.Response) -> Any:
    """The answer's body without what differs between two servers by design: generated ids, server clocks."""
    if not answer.headers.get("content-type", "").endswith("json"):
        return answer.content
    body = answer.json()
    if not isinstance(body, dict):
        return body
    if "received_at" in body:  # an event
        body["received_at"] = "*"
        request = json.loads(sent)
        for generated in ("event_id", "timestamp"):
            if request.get(generated) is None:  # absent or null: the server makes one
                body[generated] = "*"
    for result in body.get("results", []):
        item = json.loads(sent)["events"][result["index"]]
        if result["status"] != "invalid" and item.get("event_id") is None:
            result["event_id"] = "*"
    return body


def _headers(answer: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in answer.headers.items() if k not in ("x-request-id", "content-length")}


def _metrics(client: InProcessClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name in COMPARED_METRICS:
                found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=requests, authorization=st.sampled_from(AUTHORIZATIONS), origin=st.sampled_from(ORIGINS))
def test_the_lean_path_and_the_fastapi_route_answer_every_input_alike(
    both: tuple[InProcessClient, InProcessClient],
    request: tuple[str, dict[str, str], bytes],
    authorization: str | None,
    origin: str | None,
) -> None:
    lean, route = both
    path, content_type, body = request
    headers = dict(content_type)
    if authorization is not None:
        headers["authorization"] = authorization
    if origin is not None:
        headers["origin"] = origin
    answers = [client.post(path, content=body, headers=headers) for client in (lean, route)]
    assert answers[0].status_code == answers[1].status_code, (answers[0].text[:500], answers[1].text[:500])
    assert answers[0].status_code < 500, answers[0].text[:500]
    assert _headers(answers[0]) == _headers(answers[1])
    assert _masked(body, answers[0]) == _masked(body, answers[1])
    for answer in answers:
        assert int(answer.headers["content-length"]) == len(answer.content)
    assert _metrics(lean) == _metrics(route)
