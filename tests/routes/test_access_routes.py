"""API keys, scopes, rate limit and CORS: the access matrix, in process (the edge layer and the routes).

That keys never reach the logs, and the open-mode warning line, are checked on the real process in
tests/e2e/test_access_control.py."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.api.access import hash_key
from tests.routes.conftest import MakeClient
from tests.support.in_process import InProcessClient
from tests.support.problems import assert_problem

INGEST_KEY, READ_KEY, ADMIN_KEY = "ingest-key-0123456789", "read-key-0123456789", "admin-key-0123456789"
KEYS = ",".join(
    [
        f"web:{hash_key(INGEST_KEY)}:ingest",
        f"bi:{hash_key(READ_KEY)}:read",
        f"ops:{hash_key(ADMIN_KEY)}:admin",
    ]
)
EVENT = {"user_id": "user-1", "action": "signup", "source": "web"}
ORIGIN = "https://app.example.org"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def rejected(client: InProcessClient, reason: str, key: str = ADMIN_KEY) -> float:
    text = client.get("/metrics", headers=bearer(key)).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "telemetry_events_rejected_total" and sample.labels["reason"] == reason:
                return sample.value
    return 0.0  # not refused yet for this reason


@pytest.fixture
def keyed(make_client: MakeClient) -> InProcessClient:
    return make_client(env={"TELEMETRY_API_KEYS": KEYS})


def test_without_a_key_ingest_is_401_with_a_bearer_challenge_and_counted(keyed: InProcessClient) -> None:
    response = keyed.post("/v1/events", json=EVENT)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == 'Bearer realm="telemetry"'
    assert_problem(keyed.post("/v1/events", json=EVENT, headers=bearer("not-a-key")), 401)
    basic = {"Authorization": "Basic " + "d2ViOmluZ2VzdC1rZXk="}
    assert_problem(keyed.post("/v1/events/batch", json={"events": [EVENT]}, headers=basic), 401)
    assert rejected(keyed, "unauthenticated") == 3
    assert keyed.get("/v1/events", headers=bearer(ADMIN_KEY)).json()["items"] == []


def test_without_a_key_reads_are_401(keyed: InProcessClient) -> None:
    for path in ("/v1/events", "/v1/stats", "/v1/events/0190a3e4-5b6c-7d8e-9f00-112233445566"):
        assert_problem(keyed.get(path), 401)


def test_unauthenticated_client_gets_401_before_its_body_is_parsed(keyed: InProcessClient) -> None:
    junk = b'{"user_id": NaN, "a": 1, "a": 2'
    assert_problem(keyed.post("/v1/events", content=junk, headers={"content-type": "application/json"}), 401)
    assert_problem(keyed.post("/v1/events", content=junk, headers={"content-type": "text/plain"}), 401)


def test_ingest_scope_may_post_but_not_read(keyed: InProcessClient) -> None:
    created = keyed.post("/v1/events", json=EVENT, headers=bearer(INGEST_KEY))
    assert created.status_code == 201
    batch = keyed.post("/v1/events/batch", json={"events": [EVENT]}, headers=bearer(INGEST_KEY))
    assert batch.json()["accepted"] == 1
    for path in ("/v1/events", "/v1/stats", f"/v1/events/{created.json()['event_id']}"):
        response = keyed.get(path, headers=bearer(INGEST_KEY))
        assert_problem(response, 403)
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_read_scope_may_read_but_not_post(keyed: InProcessClient) -> None:
    keyed.post("/v1/events", json=EVENT, headers=bearer(INGEST_KEY))
    assert len(keyed.get("/v1/events", headers=bearer(READ_KEY)).json()["items"]) == 1
    assert keyed.get("/v1/stats", headers=bearer(READ_KEY)).json()["total"] == 1
    assert_problem(keyed.post("/v1/events", json=EVENT, headers=bearer(READ_KEY)), 403)
    assert_problem(keyed.post("/v1/events/batch", json={"events": [EVENT]}, headers=bearer(READ_KEY)), 403)
    assert rejected(keyed, "forbidden") == 2
    assert len(keyed.get("/v1/events", headers=bearer(READ_KEY)).json()["items"]) == 1


def test_admin_scope_may_do_everything(keyed: InProcessClient) -> None:
    assert keyed.post("/v1/events", json=EVENT, headers=bearer(ADMIN_KEY)).status_code == 201
    assert keyed.get("/v1/events", headers=bearer(ADMIN_KEY)).status_code == 200
    assert keyed.get("/v1/stats", headers=bearer(ADMIN_KEY)).status_code == 200


def test_bearer_scheme_is_case_insensitive_and_the_key_exact(keyed: InProcessClient) -> None:
    ok = keyed.post("/v1/events", json=EVENT, headers={"Authorization": f"bearer {INGEST_KEY}"})
    assert ok.status_code == 201
    upper = keyed.post("/v1/events", json=EVENT, headers={"Authorization": f"Bearer {INGEST_KEY.upper()}"})
    assert_problem(upper, 401)


def test_metrics_can_be_protected_with_a_read_key(make_client: MakeClient) -> None:
    client = make_client(env={"TELEMETRY_API_KEYS": KEYS, "TELEMETRY_METRICS_REQUIRE_KEY": "true"})
    assert_problem(client.get("/metrics"), 401)
    assert_problem(client.get("/metrics", headers=bearer(INGEST_KEY)), 403)
    assert client.get("/metrics", headers=bearer(READ_KEY)).status_code == 200
    assert client.get("/metrics", headers=bearer(ADMIN_KEY)).status_code == 200
    assert client.get("/healthz").status_code == 200


def test_rate_limit_per_key_answers_429_with_retry_after(make_client: MakeClient) -> None:
    env = {"TELEMETRY_API_KEYS": KEYS, "TELEMETRY_RATE_LIMIT_PER_S": "0.2", "TELEMETRY_RATE_LIMIT_BURST": "3"}
    client = make_client(env=env)
    statuses = [client.post("/v1/events", json=EVENT, headers=bearer(INGEST_KEY)).status_code for _ in range(3)]
    assert statuses == [201, 201, 201]
    limited = client.post("/v1/events", json=EVENT, headers=bearer(INGEST_KEY))
    body = assert_problem(limited, 429)
    assert 1 <= int(limited.headers["retry-after"]) <= 5
    assert "rate limit" in body["detail"]
    # Another key has its own bucket; operations routes are not limited.
    assert client.post("/v1/events", json=EVENT, headers=bearer(ADMIN_KEY)).status_code == 201
    assert all(client.get("/healthz").status_code == 200 for _ in range(5))
    assert rejected(client, "rate_limited", key=ADMIN_KEY) == 1


def test_open_mode_rate_limits_by_client_address(make_client: MakeClient) -> None:
    client = make_client(env={"TELEMETRY_RATE_LIMIT_PER_S": "0.2", "TELEMETRY_RATE_LIMIT_BURST": "2"})
    assert [client.post("/v1/events", json=EVENT).status_code for _ in range(3)] == [201, 201, 429]


def test_cors_lets_an_allowed_origin_post_events_and_nothing_more(make_client: MakeClient) -> None:
    client = make_client(env={"TELEMETRY_CORS_ORIGINS": f"{ORIGIN},https://other.example"})
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    for path in ("/v1/events", "/v1/events/batch"):
        answer = client.options(path, headers={**preflight, "Access-Control-Request-Headers": "content-type"})
        assert answer.status_code == 204
        assert answer.headers["access-control-allow-origin"] == ORIGIN
        assert answer.headers["access-control-allow-methods"] == "POST"
        assert "content-type" in answer.headers["access-control-allow-headers"]
        assert "access-control-allow-credentials" not in answer.headers
    posted = client.post("/v1/events", json=EVENT, headers={"Origin": ORIGIN})
    assert posted.status_code == 201
    assert posted.headers["access-control-allow-origin"] == ORIGIN
    assert "access-control-allow-credentials" not in posted.headers
    refused = client.post("/v1/events", json={}, headers={"Origin": ORIGIN})
    assert refused.headers["access-control-allow-origin"] == ORIGIN  # the browser may read why it was refused
    # Not for reads, not for other origins, not for other methods.
    read = client.get("/v1/events", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in read.headers
    read_preflight = client.options("/v1/stats", headers={**preflight, "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in read_preflight.headers
    evil = client.options("/v1/events", headers={**preflight, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in evil.headers
    assert evil.status_code == 405
    put = client.options("/v1/events", headers={**preflight, "Access-Control-Request-Method": "PUT"})
    assert "access-control-allow-origin" not in put.headers


def test_without_cors_origins_no_cors_headers(make_client: MakeClient) -> None:
    client = make_client()
    posted = client.post("/v1/events", json=EVENT, headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in posted.headers


def test_openapi_shows_the_bearer_scheme_on_event_routes_only(keyed: InProcessClient) -> None:
    spec = keyed.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["ApiKey"]["description"],
    }
    paths = spec["paths"]
    for path, method, scope in [("/v1/events", "post", "ingest"), ("/v1/events/batch", "post", "ingest"),
                                ("/v1/events", "get", "read"), ("/v1/stats", "get", "read"),
                                ("/v1/events/{event_id}", "get", "read")]:  # fmt: skip
        assert paths[path][method]["security"] == [{"ApiKey": [scope]}]
        assert {"401", "403", "429"} <= paths[path][method]["responses"].keys()
    for path in ("/healthz", "/readyz", "/metrics"):
        assert "security" not in paths[path]["get"]
    assert {"400", "408", "413", "415", "422"} <= paths["/v1/events"]["post"]["responses"].keys()
    assert "1048576" in spec["info"]["description"]
