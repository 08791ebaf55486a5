"""A client's retry of the same request is a duplicate, answered with the event as first stored.

Only fields the client sent are compared: a timestamp the server defaulted (none sent) or derived (PostHog's
offset from a fresh sent_at) differs on every retry and is not part of the client's fact.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from tests.support.in_process import InProcessClient, in_process_app
from tests.support.problems import assert_problem


@pytest.fixture
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessClient]:
    with in_process_app(tmp_path_factory.mktemp("retry")) as app:
        yield app


def stored(client: InProcessClient, user_id: str) -> list[dict[str, Any]]:
    response = client.get("/v1/events", params={"user_id": user_id})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_json_api_retry_without_timestamp_is_200_with_the_first_copy(client: InProcessClient) -> None:
    event = {"event_id": str(uuid4()), "user_id": "retry-1", "action": "clicked", "source": "web"}
    first = client.post("/v1/events", json=event)
    assert first.status_code == 201, first.text
    time.sleep(0.01)  # the retry's default timestamp would be another one
    again = client.post("/v1/events", json=event)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert [e["timestamp"] for e in stored(client, "retry-1")] == [first.json()["timestamp"]]


def test_json_api_a_field_the_client_sent_differently_is_still_a_conflict(client: InProcessClient) -> None:
    event = {"event_id": str(uuid4()), "user_id": "retry-2", "action": "clicked", "source": "web"}
    assert client.post("/v1/events", json=event).status_code == 201
    other_time = client.post("/v1/events", json={**event, "timestamp": "2026-01-01T00:00:00Z"})
    assert "timestamp" in assert_problem(other_time, 409)["detail"]
    other_action = client.post("/v1/events", json={**event, "action": "scrolled"})
    assert "action" in assert_problem(other_action, 409)["detail"]


def test_json_api_batch_retry_without_timestamps_is_all_duplicates(client: InProcessClient) -> None:
    events = [{"event_id": str(uuid4()), "user_id": "retry-3", "action": f"a{i}", "source": "web"} for i in range(3)]
    first = client.post("/v1/events/batch", json={"events": events})
    assert first.json()["accepted"] == 3, first.text
    time.sleep(0.01)
    again = client.post("/v1/events/batch", json={"events": events})
    assert again.status_code == 200, again.text
    assert (again.json()["duplicate"], again.json()["conflict"]) == (3, 0), again.text
    assert len(stored(client, "retry-3")) == 3


def test_segment_retry_without_timestamp_is_a_duplicate(client: InProcessClient) -> None:
    message = {"type": "track", "event": "clicked", "userId": "retry-4", "messageId": "m-retry-4"}
    # Sent a minute ago by the client's clock, retried 5 s later: relative to now, as the server checks
    # each time against its own clock (fixed dates here stopped passing a day after they were written).
    sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    first = client.post("/v1/track", json={**message, "sentAt": sent.strftime("%Y-%m-%dT%H:%M:%SZ")})
    assert first.json()["accepted"] == 1, first.text
    time.sleep(0.01)
    resent = (sent + timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    again = client.post("/v1/batch", json={"batch": [message], "sentAt": resent})
    assert again.status_code == 200, again.text
    assert again.json()["duplicate"] == 1, again.text
    (event,) = stored(client, "retry-4")
    assert event["sent_at"].startswith(sent.strftime("%Y-%m-%dT%H:%M:%S"))


def test_posthog_js_retry_with_offset_and_a_fresh_sent_at_is_a_duplicate(client: InProcessClient) -> None:
    capture = {"event": "clicked", "distinct_id": "retry-5", "uuid": str(uuid4()), "offset": 1500}
    first = client.post("/batch/", json={"batch": [capture], "sent_at": "2026-12-01T10:00:00Z"})
    assert first.json()["accepted"] == 1, first.text
    # posthog-js measures offset and the send time a few milliseconds apart: the derived timestamp moves.
    retry = {"batch": [{**capture, "offset": 4500}], "sent_at": "2026-12-01T10:00:03.020Z"}
    again = client.post("/batch/", json=retry)
    assert again.status_code == 200, again.text
    assert again.json()["duplicate"] == 1, again.text
    (event,) = stored(client, "retry-5")
    assert event["timestamp"].startswith("2026-12-01T09:59:58.5")


def test_posthog_retry_without_timestamp_or_offset_is_a_duplicate(client: InProcessClient) -> None:
    capture = {"event": "clicked", "distinct_id": "retry-6", "uuid": str(uuid4())}
    assert client.post("/e/", json=capture).json()["accepted"] == 1
    time.sleep(0.01)
    again = client.post("/e/", json=capture)
    assert again.status_code == 200, again.text
    assert again.json()["duplicate"] == 1, again.text


def test_posthog_retry_with_offset_and_no_send_time_is_a_duplicate(client: InProcessClient) -> None:
    capture = {"event": "clicked", "distinct_id": "retry-7", "uuid": str(uuid4()), "offset": 100}
    assert client.post("/e/", json=capture).json()["accepted"] == 1
    time.sleep(0.01)  # the timestamp is received_at - offset: another one on the retry
    again = client.post("/e/", json={**capture, "offset": 250})
    assert again.status_code == 200, again.text
    assert again.json()["duplicate"] == 1, again.text
