"""Property: any valid event sent to the API reads back unchanged (the app in process, through HTTP)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from app.utc_text import to_utc_text
from tests.support.event_strategies import event_bodies
from tests.support.in_process import InProcessClient, in_process_app


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessClient]:
    with in_process_app(tmp_path_factory.mktemp("roundtrip")) as started:
        yield started


def utc_text(iso: str) -> str:
    return to_utc_text(datetime.fromisoformat(iso))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=event_bodies())
def test_any_valid_event_reads_back_unchanged_over_http(client: InProcessClient, body: dict[str, Any]) -> None:
    # Sent as the standard library writes JSON (as most clients do): non-ASCII escaped, big ints in full.
    sent = json.dumps(body)
    created = client.post("/v1/events", content=sent, headers={"content-type": "application/json"})
    assert created.status_code == 201, created.text
    read = client.get(f"/v1/events/{body['event_id']}")
    assert read.status_code == 200
    stored = json.loads(read.text)  # the standard parser: integers stay exact whatever their size
    assert stored == json.loads(created.text)
    assert stored["user_id"] == body["user_id"]
    assert stored["action"] == body["action"]
    assert stored["source"] == body["source"]
    assert stored["timestamp"] == utc_text(body["timestamp"])
    assert stored["sent_at"] == (utc_text(body["sent_at"]) if "sent_at" in body else None)
    assert stored["metadata"] == body["metadata"]
    assert json.dumps(stored["metadata"], sort_keys=True) == json.dumps(body["metadata"], sort_keys=True)
