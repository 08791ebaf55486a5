"""What the optimised ingest path must not change: JSON beyond orjson's reach still round-trips."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e


def test_integers_past_64_bits_in_metadata_are_stored_exactly(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server()
    big = 2**70 + 1
    body = b'{"user_id": "u", "action": "a", "source": "s", "metadata": {"big": %d}}' % big
    response = server.client.post("/v1/events", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 201, response.text
    stored = server.client.get(f"/v1/events/{response.json()['event_id']}")
    assert f'"big":{big}' in stored.text.replace(" ", "")
    malformed = server.client.post("/v1/events", content=b'{"user_id": ', headers={"content-type": "application/json"})
    assert malformed.status_code == 400
