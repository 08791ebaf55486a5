"""Whatever an SDK route is sent, the answer is a 4xx problem or a success, never a 5xx."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.in_process import InProcessClient, in_process_app
from tests.support.problems import assert_problem

SEGMENT_ROUTES = [
    f"/v1/{path}"
    for path in (
        "track", "t", "page", "p", "screen", "s", "identify", "i", "group", "g", "alias", "a", "batch", "import", "b"
    )
]  # fmt: skip
POSTHOG_ROUTES = ["/batch/", "/capture/", "/e/", "/i/v0/e/"]
EVENT = {"event": "clicked", "distinct_id": "u1", "properties": {}}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessClient]:
    with in_process_app(tmp_path_factory.mktemp("sdk-hostile")) as app:
        yield app


def nested(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


@pytest.mark.parametrize("query", ["_=999999999999999", "_=%C2%B2", "_=-5", "_=1e3"])
def test_posthog_send_time_in_the_query_that_is_no_time_is_a_400(client: InProcessClient, query: str) -> None:
    body = assert_problem(client.post(f"/e/?{query}", json=EVENT), 400)
    assert "_" in body["detail"]


def test_posthog_offset_before_year_one_is_a_refused_event_not_a_500(client: InProcessClient) -> None:
    batch = {"sent_at": "0001-01-01T00:00:00Z", "batch": [{**EVENT, "offset": 1000}]}
    body = assert_problem(client.post("/batch/", json=batch), 400)
    assert "offset" in body["rejected"][0]["reason"]


@pytest.mark.parametrize("levels", [17, 350, 600, 990])
@pytest.mark.parametrize(
    ("route", "template"),
    [
        ("/v1/track", '{"type":"track","event":"x","userId":"u","properties":@}'),
        ("/v1/batch", '{"batch":[{"type":"track","event":"x","userId":"u","properties":@}]}'),
        ("/v1/page", '{"type":"page","userId":"u","context":{"page":@}}'),
        ("/e/", '{"event":"x","distinct_id":"u","properties":@}'),
        ("/batch/", '{"batch":[{"event":"x","distinct_id":"u","properties":@}]}'),
    ],
)
def test_deeply_nested_properties_are_a_422_with_the_core_api_limit(
    client: InProcessClient, route: str, template: str, levels: int
) -> None:
    body = template.replace("@", nested(levels))
    response = client.post(route, content=body, headers={"content-type": "application/json"})
    if levels >= 990 and response.status_code == 400:  # past what the JSON parser itself takes: malformed
        assert_problem(response, 400)
        return
    problem = assert_problem(response, 422)
    assert "nested deeper than 16 levels" in problem["detail"]


def test_the_core_api_refuses_the_same_nesting_with_the_same_words(client: InProcessClient) -> None:
    body = '{"user_id":"u","action":"a","source":"s","metadata":@}'.replace("@", nested(350))
    response = client.post("/v1/events", content=body, headers={"content-type": "application/json"})
    assert "nested deeper than 16 levels" in assert_problem(response, 422)["detail"]


JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
TIMES = st.sampled_from(
    ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-01-01T00:00:00+14:00", "2026-13-01", "", "now"]
) | st.text(max_size=30)
NUMBERS = st.integers(min_value=-(10**20), max_value=10**20) | st.floats(allow_nan=False) | st.booleans()
IDS = st.text(max_size=40) | st.integers() | st.none() | st.uuids().map(str)


def _with_optional(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(required, optional=optional)


POSTHOG_EVENT = _with_optional(
    {"event": st.sampled_from(["clicked", "$pageview", "$identify", "", "x" * 200]) | st.text(max_size=10)},
    {
        "distinct_id": IDS,
        "uuid": IDS,
        "timestamp": TIMES,
        "sent_at": TIMES,
        "offset": NUMBERS,
        "api_key": st.text(max_size=10),
        "properties": st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=5) | JSON_VALUES,
    },
)
SEGMENT_MESSAGE = _with_optional(
    {"type": st.sampled_from(["track", "page", "screen", "identify", "group", "alias", "other"])},
    {
        "event": st.text(max_size=20),
        "userId": IDS,
        "anonymousId": IDS,
        "messageId": IDS,
        "timestamp": TIMES,
        "originalTimestamp": TIMES,
        "sentAt": TIMES,
        "properties": JSON_VALUES,
        "context": st.dictionaries(st.sampled_from(["library", "page", "device", "ip"]), JSON_VALUES, max_size=3),
    },
)
POSTHOG_BODIES = (
    POSTHOG_EVENT
    | st.lists(POSTHOG_EVENT, max_size=4)
    | _with_optional({"batch": st.lists(POSTHOG_EVENT, max_size=4) | JSON_VALUES}, {"sent_at": TIMES, "api_key": IDS})
    | JSON_VALUES
)
SEGMENT_BODIES = (
    SEGMENT_MESSAGE
    | _with_optional({"batch": st.lists(SEGMENT_MESSAGE, max_size=4) | JSON_VALUES}, {"sentAt": TIMES, "writeKey": IDS})
    | JSON_VALUES
)
QUERY_VALUES = st.text(max_size=20) | st.sampled_from(["999999999999999", "²", "-1", "1e400", "gzip-js", "lz64"])
QUERIES = st.dictionaries(st.sampled_from(["_", "compression", "token", "ver", "ip", "x"]), QUERY_VALUES, max_size=3)


def _send(client: InProcessClient, route: str, body: Any, query: dict[str, str], how: str) -> int:
    raw = json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    if how == "gzip":
        raw, headers["content-encoding"] = gzip.compress(raw), "gzip"
    elif how == "gzip-garbage":
        raw, headers["content-encoding"] = raw[:20], "gzip"
    elif how == "form":
        headers["content-type"] = "application/x-www-form-urlencoded"
        raw = b"data=" + raw
    response = client.post(route, content=raw, headers=headers, params=query)
    assert response.status_code < 500, (route, query, how, response.text[:300])
    if response.status_code >= 400:
        assert_problem(response, response.status_code)
    return response.status_code


HOW = st.sampled_from(["plain", "gzip", "gzip-garbage", "form"])
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(route=st.sampled_from(POSTHOG_ROUTES), body=POSTHOG_BODIES, query=QUERIES, how=HOW)
def test_posthog_routes_never_answer_5xx(
    client: InProcessClient, route: str, body: Any, query: dict[str, str], how: str
) -> None:
    _send(client, route, body, query, how)


@FUZZ
@given(route=st.sampled_from(SEGMENT_ROUTES), body=SEGMENT_BODIES, query=QUERIES, how=HOW)
def test_segment_routes_never_answer_5xx(
    client: InProcessClient, route: str, body: Any, query: dict[str, str], how: str
) -> None:
    _send(client, route, body, query, how)


def test_the_generated_payloads_reach_storage_too(client: InProcessClient) -> None:
    # A guard on the property tests: the shapes above include events the routes accept, not only refusals.
    ok = client.post("/e/", json={**EVENT, "offset": 5, "sent_at": "2026-01-01T00:00:00Z"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["accepted"] == 1


def test_the_openapi_schema_lists_the_422_of_every_sdk_route(client: InProcessClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for route in SEGMENT_ROUTES + POSTHOG_ROUTES:
        assert "422" in paths[route]["post"]["responses"], route
