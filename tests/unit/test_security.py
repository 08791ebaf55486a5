"""API keys, scopes, the token bucket and the key settings, as pure rules (no HTTP)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from pydantic import ValidationError

from app.api.access import ANONYMOUS, AccessGuard, ApiKey, KeyRing, TokenBucketLimiter, hash_key
from app.api.problems import ApiProblem
from app.config import ApiKeySetting, Settings

INGEST_KEY, READ_KEY, ADMIN_KEY = "k-ingest-123", "k-read-456", "k-admin-789"


def setting(name: str, key: str, *scopes: str) -> ApiKeySetting:
    return ApiKeySetting(name=name, sha256=hash_key(key), scopes=frozenset(scopes))  # type: ignore[arg-type]


RING = KeyRing(
    [setting("web", INGEST_KEY, "ingest"), setting("bi", READ_KEY, "read"), setting("ops", ADMIN_KEY, "admin")]
)


class Rejections:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def __call__(self, reason: str, count: int = 1, **fields: Any) -> None:
        self.reasons.append(reason)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_hash_key_is_the_hex_sha256_of_the_utf8_key() -> None:
    assert hash_key("abc") == hashlib.sha256(b"abc").hexdigest()


def test_keyring_finds_a_key_by_its_hash_and_nothing_else() -> None:
    found = RING.authenticate(INGEST_KEY)
    assert found == ApiKey("web", frozenset({"ingest"}))
    assert RING.authenticate("k-ingest-12") is None
    assert RING.authenticate(hash_key(INGEST_KEY)) is None  # the stored hash is not a key
    assert RING.authenticate("") is None
    assert RING.authenticate("\ud800") is None  # a key that is not UTF-8 does not crash the lookup


def test_keyring_without_keys_is_open() -> None:
    assert KeyRing([]).open
    assert not RING.open


@pytest.mark.parametrize(
    ("scopes", "scope", "allowed"),
    [
        ({"ingest"}, "ingest", True),
        ({"ingest"}, "read", False),
        ({"read"}, "read", True),
        ({"read"}, "ingest", False),
        ({"admin"}, "ingest", True),
        ({"admin"}, "read", True),
        ({"ingest", "read"}, "admin", False),
    ],
)
def test_scopes(scopes: set[str], scope: str, allowed: bool) -> None:
    assert ApiKey("k", frozenset(scopes)).allows(scope) is allowed


def test_guard_401_without_a_valid_key_403_without_the_scope_counting_ingest_only() -> None:
    rejections = Rejections()
    guard = AccessGuard(RING, None, rejections)
    with pytest.raises(ApiProblem) as caught:
        guard.authorize(None, "ingest", "1.2.3.4")
    assert caught.value.status == 401
    assert caught.value.headers["WWW-Authenticate"].startswith("Bearer")
    with pytest.raises(ApiProblem) as caught:
        guard.authorize("wrong", "read", "1.2.3.4")
    assert caught.value.status == 401
    with pytest.raises(ApiProblem) as caught:
        guard.authorize(READ_KEY, "ingest", "1.2.3.4")
    assert caught.value.status == 403
    assert 'error="insufficient_scope"' in caught.value.headers["WWW-Authenticate"]
    with pytest.raises(ApiProblem) as caught:
        guard.authorize(INGEST_KEY, "read", "1.2.3.4")
    assert caught.value.status == 403
    assert guard.authorize(INGEST_KEY, "ingest", "1.2.3.4").name == "web"
    assert guard.authorize(ADMIN_KEY, "read", "1.2.3.4").name == "ops"
    assert rejections.reasons == ["unauthenticated", "forbidden"]  # the read refusals are not event rejections


def test_open_guard_lets_anyone_in_as_anonymous() -> None:
    guard = AccessGuard(KeyRing([]), None, Rejections())
    assert guard.authorize(None, "ingest", "1.2.3.4") is ANONYMOUS
    assert guard.authorize("anything", "admin", "1.2.3.4") is ANONYMOUS


def test_token_bucket_allows_the_burst_then_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucketLimiter(rate_per_s=2, burst=3, clock=clock)
    assert [bucket.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take("a") == pytest.approx(0.5)
    assert bucket.take("b") == 0.0  # each caller has its own bucket
    clock.now += 0.5
    assert bucket.take("a") == 0.0
    assert bucket.take("a") > 0
    clock.now += 100
    assert [bucket.take("a") for _ in range(4)][:3] == [0.0, 0.0, 0.0]  # refills to the burst, not beyond


def test_token_bucket_forgets_idle_callers_to_bound_memory() -> None:
    clock = Clock()
    bucket = TokenBucketLimiter(rate_per_s=1, burst=1, clock=clock, max_callers=10)
    for i in range(10):
        bucket.take(f"ip-{i}")
    clock.now += 5  # all refilled
    bucket.take("ip-new")
    assert len(bucket._buckets) == 1


def test_guard_rate_limits_per_key_with_retry_after() -> None:
    clock = Clock()
    rejections = Rejections()
    guard = AccessGuard(RING, TokenBucketLimiter(1, 2, clock=clock), rejections)
    guard.authorize(INGEST_KEY, "ingest", "1.1.1.1")
    guard.authorize(INGEST_KEY, "ingest", "2.2.2.2")  # same key from another address: same bucket
    with pytest.raises(ApiProblem) as caught:
        guard.authorize(INGEST_KEY, "ingest", "3.3.3.3")
    assert caught.value.status == 429
    assert caught.value.headers["Retry-After"] == "1"
    assert guard.authorize(ADMIN_KEY, "ingest", "1.1.1.1").name == "ops"  # another key: its own bucket
    assert rejections.reasons == ["rate_limited"]


def test_open_mode_rate_limits_by_client_address() -> None:
    guard = AccessGuard(KeyRing([]), TokenBucketLimiter(1, 1, clock=Clock()), Rejections())
    guard.authorize(None, "ingest", "1.1.1.1")
    guard.authorize(None, "ingest", "2.2.2.2")
    with pytest.raises(ApiProblem):
        guard.authorize(None, "ingest", "1.1.1.1")


def test_api_keys_setting_takes_json_or_the_compact_form(monkeypatch: pytest.MonkeyPatch) -> None:
    digest = hash_key("x")
    monkeypatch.setenv("TELEMETRY_API_KEYS", f"web:{digest}:ingest, ops:{digest.upper()}:read+admin")
    keys = Settings().api_keys
    assert [(k.name, k.sha256, k.scopes) for k in keys] == [
        ("web", digest, frozenset({"ingest"})),
        ("ops", digest, frozenset({"read", "admin"})),
    ]
    monkeypatch.setenv("TELEMETRY_API_KEYS", f'[{{"name": "web", "sha256": "{digest}", "scopes": ["ingest"]}}]')
    assert Settings().api_keys[0].scopes == frozenset({"ingest"})
    monkeypatch.delenv("TELEMETRY_API_KEYS")
    assert Settings().api_keys == ()


@pytest.mark.parametrize(
    "value",
    [
        "web:notahash:ingest",
        f"web:{'a' * 64}:superuser",
        f"web:{'a' * 64}",
        f"web:{'a' * 64}:",
        "not json [",
    ],
)
def test_bad_api_keys_setting_stops_start_up(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("TELEMETRY_API_KEYS", value)
    with pytest.raises((ValidationError, ValueError)):
        Settings()
