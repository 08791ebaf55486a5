"""Access control: API keys (stored as SHA-256 hashes) with scopes, and a per-key rate limit.

Scopes: `ingest` (POST events), `read` (GET events, stats, export), `admin` (everything).
A route asks for a scope with `dependencies=[Depends(require_scope("ingest"))]`; the OpenAPI schema then
shows the bearer scheme. Routes that take the key from elsewhere (HTTP Basic, a field of the body, as the
Segment and PostHog protocols do) call `authorize(request, key, "ingest")` themselves: same lookup, same
401/403/429, same counting.
"""

from __future__ import annotations

import inspect
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.access import ANONYMOUS, ApiKey
from app.api.deps import runtime_of
from app.config import Scope


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
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


def authenticate(request: Request, key: str) -> ApiKey | None:
    """The identity of a key (no scope check, no rate limit), or None."""
    guard = runtime_of(request).access
    return ANONYMOUS if guard.keyring.open else guard.keyring.authenticate(key)


_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key with the route's scope (ingest, read or admin). Unused when no key is configured.",
)


class ScopeRequirement:
    """FastAPI dependency: the caller's ApiKey if it has `scope`; else 401, 403 or 429 (problem+json).

    Its signature names the bearer scheme with the scope, so the OpenAPI schema shows which scope each
    route needs (`security: [{"ApiKey": ["ingest"]}]`).
    """

    def __init__(self, scope: Scope) -> None:
        self.scope: Scope = scope
        credentials = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer, scopes=[scope])]
        self.__signature__ = inspect.Signature(
            [
                inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request),
                inspect.Parameter("credentials", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=credentials),
            ],
            return_annotation=ApiKey,
        )

    async def run_before_body(self, request: Request) -> ApiKey:
        """Called by JsonRoute before the body is read; the dependency then reuses the result."""
        return authorize(request, bearer_token(request), self.scope)

    async def __call__(self, request: Request, credentials: HTTPAuthorizationCredentials | None = None) -> ApiKey:
        done: ApiKey | None = getattr(request.state, "api_key", None)
        if done is not None and done.allows(self.scope):
            return done
        return authorize(request, bearer_token(request), self.scope)


def require_scope(scope: Scope) -> ScopeRequirement:
    return ScopeRequirement(scope)
