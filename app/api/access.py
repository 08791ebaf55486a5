"""Access rules: API keys (stored as SHA-256 hashes) with scopes, and a per-key rate limit. No HTTP here:
security.py applies them to requests.

Scopes: `ingest` (POST events), `read` (GET events, stats, export), `admin` (everything).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from app.api.problems import ApiProblem
from app.config import ApiKeySetting, Scope
from app.services.rejections import RejectionReason

REALM = "telemetry"


class Reject(Protocol):
    """Counts and logs a refusal (app.services.rejections.Rejections)."""

    def __call__(self, reason: RejectionReason, count: int = 1, **fields: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class ApiKey:
    """Who is calling: a configured key's name and scopes (never the key itself)."""

    name: str
    scopes: frozenset[str]
    anonymous: bool = False

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


ANONYMOUS = ApiKey("anonymous", frozenset({"ingest", "read", "admin"}), anonymous=True)


def hash_key(key: str) -> str:
    """The hex SHA-256 stored in TELEMETRY_API_KEYS for a key (`python -m app hash-key`)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class KeyRing:
    """The configured keys. Empty: the service runs open."""

    def __init__(self, keys: Iterable[ApiKeySetting]) -> None:
        self._keys = [(bytes.fromhex(k.sha256), ApiKey(k.name, frozenset(k.scopes))) for k in keys]

    @property
    def open(self) -> bool:
        return not self._keys

    def authenticate(self, key: str) -> ApiKey | None:
        """The key's identity, or None. Compares hashes in constant time against every stored key."""
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
        found = None
        for stored, api_key in self._keys:
            if hmac.compare_digest(digest, stored):  # no early exit: the time does not say which key matched
                found = api_key
        return found


class TokenBucketLimiter:
    """Token bucket per caller: `rate` requests a second on average, `burst` at once.

    Per process: with N workers or replicas a caller can get N times the rate (documented in README).
    """

    def __init__(
        self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic, max_callers: int = 100_000
    ) -> None:
        self.rate = rate_per_s
        self.burst = float(max(1, burst))
        self._clock = clock
        self._max_callers = max_callers
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, caller: str) -> float:
        """0 when the request may go ahead (a token is spent); else the seconds until a token is back."""
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.get(caller, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1:
                self._buckets[caller] = (tokens - 1, now)
                wait = 0.0
            else:
                self._buckets[caller] = (tokens, now)
                wait = (1 - tokens) / self.rate
            if len(self._buckets) > self._max_callers:
                self._forget_full(now)
            return wait

    def _forget_full(self, now: float) -> None:
        # A full bucket is the same as no bucket: dropping those bounds memory (many client addresses).
        full = [c for c, (t, at) in self._buckets.items() if t + (now - at) * self.rate >= self.burst]
        for caller in full:
            del self._buckets[caller]


class AccessGuard:
    """Authentication, scope and rate limit for one request; refusals of ingest are counted as rejections."""

    def __init__(self, keyring: KeyRing, limiter: TokenBucketLimiter | None, reject: Reject) -> None:
        self.keyring = keyring
        self.limiter = limiter
        self._reject = reject

    def authorize(self, presented: str | None, scope: Scope, client: str) -> ApiKey:
        if self.keyring.open:
            key, caller = ANONYMOUS, f"address:{client}"
        else:
            found = self.keyring.authenticate(presented) if presented else None
            if found is None:
                self._refused(scope, RejectionReason.UNAUTHENTICATED)
                raise ApiProblem(
                    401,
                    "unauthenticated",
                    "A valid API key is required: Authorization: Bearer <key>.",
                    headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'},
                )
            if not found.allows(scope):
                self._refused(scope, RejectionReason.FORBIDDEN, key=found.name)
                raise ApiProblem(
                    403,
                    "insufficient-scope",
                    f"The key '{found.name}' does not have the '{scope}' scope.",
                    headers={
                        "WWW-Authenticate": f'Bearer realm="{REALM}", error="insufficient_scope", scope="{scope}"'
                    },
                )
            key, caller = found, f"key:{found.name}"
        if self.limiter is not None:
            wait = self.limiter.take(caller)
            if wait > 0:
                self._refused(scope, RejectionReason.RATE_LIMITED, key=key.name)
                retry_after = max(1, math.ceil(wait))
                raise ApiProblem(
                    429,
                    "rate-limited",
                    f"Over the rate limit of {self.limiter.rate:g} requests/s; retry in {retry_after} s.",
                    headers={"Retry-After": str(retry_after)},
                )
        return key

    def _refused(self, scope: Scope, reason: RejectionReason, **fields: Any) -> None:
        if scope == "ingest":
            self._reject(reason, **fields)
