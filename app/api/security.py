"""The access rules (access.py) applied to a request: the key it presents, and the check of a scope.

A route declares its scope in its RoutePolicy (policy.py) and the edge checks the bearer key. Routes that
take the key from elsewhere (HTTP Basic, a field of the body, as the Segment and PostHog protocols do)
call `authorize(request, key, "ingest")` themselves: same lookup, same 401/403/429, same counting.
"""

from __future__ import annotations

from fastapi import Request

from app.api.access import ApiKey
from app.api.deps import runtime_of
from app.config import Scope


def bearer_token(request: Request) -> str | None:
    return bearer_from(request.headers.get("authorization"))


def bearer_from(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def authorize(request: Request, key: str | None, scope: Scope) -> ApiKey:
    """Check a key taken from anywhere (bearer, HTTP Basic, body) for a scope: ApiKey, or ApiProblem 401/403/429.

    The result is kept on request.state.api_key for the route.
    """
    guard = runtime_of(request).access
    api_key = guard.authorize(key, scope, client_address(request))
    request.state.api_key = api_key
    return api_key
