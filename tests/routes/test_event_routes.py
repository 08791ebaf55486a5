"""Route behaviour of the event API, in process: results of a batch, error bodies, 404/405, cursors, stats,
readiness and the metrics the routes leave. Logs on stdout and promtool stay in tests/e2e/test_api_e2e.py."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.routes.conftest import MakeClient, metric_value
from tests.support.in_process import InProcessClient
from tests.support.problems import assert_problem

EVENT = {"user_id": "user-1", "action": "signup", "source": "web", "metadata": {"email": "secret@example.org"}}


def test_post_event_stores_it_and_returns_201_with_server_fields(client: InProcessClient) -> None:
    response = client.post("/v1/events", json=EVENT)
    assert response.status_code == 201
    body = response.json()
    event_id = uuid.UUID(body["event_id"])
    assert event_id.version == 7
    assert body["timestamp"] == body["received_at"]
    assert body["timestamp"].endswith("Z")
    assert client.get(f"/v1/events/{event_id}").json() == body


def test_retry_with_same_event_id_returns_200_and_stores_once(client: InProcessClient) -> None:
    event = {**EVENT, "event_id": str(uuid.uuid4()), "timestamp": "2026-05-01T10:00:00+02:00"}
    first = client.post("/v1/events", json=event)
    again = client.post("/v1/events", json=event)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert first.json()["timestamp"] == "2026-05-01T08:00:00.000000Z"
    listed = client.get("/v1/events", params={"user_id": "user-1"}).json()["items"]
    assert [e["event_id"] for e in listed] == [event["event_id"]]
    assert metric_value(client, "telemetry_events_duplicate_total") == 1


def test_same_event_id_with_other_payload_is_409_naming_the_conflict(client: InProcessClient) -> None:
    event = {**EVENT, "event_id": str(uuid.uuid4()), "timestamp": "2026-05-01T10:00:00Z"}
    client.post("/v1/events", json=event)
    body = assert_problem(client.post("/v1/events", json={**event, "action": "purchase"}), 409)
    assert body["event_id"] == event["event_id"]
    assert body["conflicting_fields"] == ["action"]
    assert "action" in body["detail"]


def test_naive_timestamp_is_422_listing_the_field(client: InProcessClient) -> None:
    body = assert_problem(client.post("/v1/events", json={**EVENT, "timestamp": "2026-05-01T10:00:00"}), 422)
    assert [e["field"] for e in body["errors"]] == ["timestamp"]
    assert client.get("/v1/events").json()["items"] == []


def test_validation_error_lists_every_failing_field(client: InProcessClient) -> None:
    body = assert_problem(client.post("/v1/events", json={"user_id": 5, "source": ""}), 422)
    assert {e["field"] for e in body["errors"]} == {"user_id", "action", "source"}


def test_malformed_json_is_400(client: InProcessClient) -> None:
    response = client.post("/v1/events", content=b'{"user_id": ', headers={"content-type": "application/json"})
    assert_problem(response, 400)


def test_batch_stores_valid_items_and_reports_each_in_order(client: InProcessClient) -> None:
    known = {**EVENT, "event_id": str(uuid.uuid4()), "timestamp": "2026-05-01T10:00:00Z"}
    client.post("/v1/events", json=known)
    items = [
        {**EVENT, "action": "view"},
        {"user_id": "x"},
        known,
        {**known, "action": "changed"},
        {**EVENT, "timestamp": "2026-05-01T10:00:00"},
    ]
    response = client.post("/v1/events/batch", json={"events": items})
    assert response.status_code == 200
    body = response.json()
    assert [r["status"] for r in body["results"]] == ["accepted", "invalid", "duplicate", "conflict", "invalid"]
    assert [r["index"] for r in body["results"]] == [0, 1, 2, 3, 4]
    assert (body["accepted"], body["duplicate"], body["conflict"], body["invalid"]) == (1, 1, 1, 2)
    assert {e["field"] for e in body["results"][1]["errors"]} == {"action", "source"}
    stored = client.get(f"/v1/events/{body['results'][0]['event_id']}")
    assert stored.json()["action"] == "view"
    assert len(client.get("/v1/events").json()["items"]) == 2


def test_batch_over_the_maximum_is_413_and_stores_nothing(make_client: MakeClient) -> None:
    client = make_client(batch_max_events=3)
    assert_problem(client.post("/v1/events/batch", json={"events": [EVENT] * 4}), 413)
    assert client.post("/v1/events/batch", json={"events": [EVENT] * 3}).json()["accepted"] == 3
    assert len(client.get("/v1/events").json()["items"]) == 3


def test_malformed_batch_envelope_is_422(client: InProcessClient) -> None:
    assert_problem(client.post("/v1/events/batch", json={"events": {"not": "a list"}}), 422)
    assert_problem(client.post("/v1/events/batch", json=[EVENT]), 422)


def test_unknown_event_is_404_problem(client: InProcessClient) -> None:
    assert_problem(client.get(f"/v1/events/{uuid.uuid4()}"), 404)
    assert_problem(client.get("/no/such/route"), 404)


def test_listing_pages_through_everything_with_cursor(client: InProcessClient) -> None:
    events = [{**EVENT, "timestamp": f"2026-05-01T10:00:{i:02d}Z", "action": f"a{i % 3}"} for i in range(25)]
    client.post("/v1/events/batch", json={"events": events})
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 10}
    pages = 0
    while True:
        body = client.get("/v1/events", params=params).json()
        seen += [e["timestamp"] for e in body["items"]]
        pages += 1
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
    assert pages == 3
    assert seen == sorted(e["timestamp"].replace("Z", ".000000Z") for e in events)
    only = client.get("/v1/events", params={"action": "a1", "since": "2026-05-01T10:00:10Z"}).json()
    assert all(e["action"] == "a1" and e["timestamp"] >= "2026-05-01T10:00:10" for e in only["items"])
    assert len(only["items"]) == 5
    assert_problem(client.get("/v1/events", params={"cursor": "garbage!"}), 400)
    assert_problem(client.get("/v1/events", params={"limit": 1001}), 422)


def test_listing_newest_first_pages_back_and_a_cursor_pages_both_ways(client: InProcessClient) -> None:
    events = [{**EVENT, "timestamp": f"2026-05-01T10:00:{i:02d}Z"} for i in range(12)]
    client.post("/v1/events/batch", json={"events": events})
    stamps = [e["timestamp"].replace("Z", ".000000Z") for e in events]
    newest = client.get("/v1/events", params={"order": "desc", "limit": 5}).json()
    assert [e["timestamp"] for e in newest["items"]] == stamps[::-1][:5]
    older = client.get("/v1/events", params={"order": "desc", "limit": 5, "cursor": newest["next_cursor"]})
    assert [e["timestamp"] for e in older.json()["items"]] == stamps[::-1][5:10]
    # The same cursor read oldest first: what came after it.
    after = client.get("/v1/events", params={"order": "asc", "cursor": newest["next_cursor"]}).json()
    assert [e["timestamp"] for e in after["items"]] == stamps[8:]
    assert_problem(client.get("/v1/events", params={"order": "newest"}), 422)


def test_stats_count_by_action_source_and_bucket(client: InProcessClient) -> None:
    events = [
        {**EVENT, "action": "view", "source": "web", "timestamp": "2026-05-01T10:05:00Z"},
        {**EVENT, "action": "view", "source": "ios", "timestamp": "2026-05-01T10:45:00Z"},
        {**EVENT, "action": "buy", "source": "web", "timestamp": "2026-05-01T11:15:00Z"},
        {**EVENT, "action": "buy", "source": "web", "timestamp": "2026-05-02T09:00:00Z"},
    ]
    client.post("/v1/events/batch", json={"events": events})
    body = client.get(
        "/v1/stats", params={"since": "2026-05-01T00:00:00Z", "until": "2026-05-02T00:00:00Z", "bucket": "hour"}
    ).json()
    assert body["total"] == 3
    assert body["by_action"] == {"view": 2, "buy": 1}
    assert body["by_source"] == {"web": 2, "ios": 1}
    assert body["by_bucket"] == [
        {"start": "2026-05-01T10:00:00Z", "count": 2},
        {"start": "2026-05-01T11:00:00Z", "count": 1},
    ]
    daily = client.get("/v1/stats", params={"bucket": "day"}).json()
    assert [b["count"] for b in daily["by_bucket"]] == [3, 1]


def test_health_and_readiness(client: InProcessClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200


def test_readiness_fails_when_the_database_cannot_be_written(client: InProcessClient, tmp_path: Path) -> None:
    path = tmp_path / "telemetry.db"  # the file in_process_app opens
    blocker = sqlite3.connect(path, isolation_level=None, timeout=1)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock past the busy timeout
    try:
        body = assert_problem(client.get("/readyz"), 503)
        assert "not writable" in body["detail"]
    finally:
        blocker.execute("ROLLBACK")
    assert client.get("/readyz").status_code == 200


def test_http_metrics_use_route_templates_and_one_value_for_unmatched(client: InProcessClient) -> None:
    for _ in range(2):
        client.get(f"/v1/events/{uuid.uuid4()}")
    client.get("/nothing/here")
    client.get("/also/nothing")
    assert metric_value(client, "http_requests_total", route="/v1/events/{event_id}", status="404") == 2
    assert metric_value(client, "http_requests_total", route="unmatched", status="404") == 2
    assert metric_value(client, "http_request_duration_seconds_count", route="/v1/events/{event_id}") == 2
    text = client.get("/metrics").text
    assert "/nothing/here" not in text


def test_domain_metrics_count_actions_by_action_and_source(client: InProcessClient) -> None:
    events = [{**EVENT, "action": "view", "source": "web"}] * 3 + [{**EVENT, "action": "buy", "source": "ios"}]
    client.post("/v1/events/batch", json={"events": [*events, {"bad": 1}]})
    assert metric_value(client, "telemetry_user_actions_total", action="view", source="web") == 3
    assert metric_value(client, "telemetry_user_actions_total", action="buy") == 1
    assert metric_value(client, "telemetry_user_actions_total") == 4
    assert metric_value(client, "telemetry_events_rejected_total", reason="invalid") == 1


def test_ten_thousand_distinct_actions_stay_within_the_label_bound(make_client: MakeClient) -> None:
    client = make_client(metrics_label_max_values=50)
    for chunk in range(10):
        batch = [{**EVENT, "action": f"action-{chunk}-{i}"} for i in range(1000)]
        assert client.post("/v1/events/batch", json={"events": batch}).json()["accepted"] == 1000
    text = client.get("/metrics").text
    actions = {
        sample.labels["action"]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "telemetry_user_actions_total"
    }
    assert len(actions) == 51
    assert metric_value(client, "telemetry_user_actions_total") == 10_000


def test_openapi_documents_every_status_each_route_returns(client: InProcessClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert {"200", "201", "409", "422", "503"} <= paths["/v1/events"]["post"]["responses"].keys()
    assert {"200", "413", "422"} <= paths["/v1/events/batch"]["post"]["responses"].keys()
    assert {"200", "404"} <= paths["/v1/events/{event_id}"]["get"]["responses"].keys()
    assert {"200", "400", "422"} <= paths["/v1/events"]["get"]["responses"].keys()
    assert "503" in paths["/readyz"]["get"]["responses"]
    assert client.get("/docs").status_code == 200
