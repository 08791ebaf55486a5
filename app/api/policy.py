"""Each route's edge policy, declared where the route is declared, enforced by one layer (edge.py).

A route lists its policy among its dependencies: `dependencies=[READ]`. The policy is a FastAPI
dependency too, so the OpenAPI schema names the bearer scheme and scope of every route that checks one,
and the route may read the caller's ApiKey. The edge layer finds the policy of the route a request
matches and applies it before the body is read: body limit, CORS, API key and scope, JSON media type.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Request, Security
from fastapi.params import Depends
from fastapi.routing import RouteContext
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.routing import BaseRoute

from app.api.access import ApiKey
from app.api.security import authorize, bearer_token
from app.config import Scope, Settings

if TYPE_CHECKING:
    from starlette.responses import Response

    from app.bootstrap import Runtime

# The route's answer to a whole body, computed without FastAPI's request machinery (see RoutePolicy.lean).
LeanHandler = Callable[["Runtime", bytes], Awaitable["Response"]]


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    scope: Scope | None = None  # the API key scope the route needs; None: open
    # The key comes in the body or as HTTP Basic (the SDK protocols): the route checks it itself, with
    # the same lookup. Otherwise the edge checks the bearer key before a byte of the body is read.
    key_in_body: bool = False
    # With key_in_body: a query parameter that may carry the key instead (PostHog's ?token=). A key found
    # before the body (there, or as HTTP Basic user or bearer) is checked by the edge, before the body is read.
    query_key: str | None = None
    json_body: bool = False  # a body declared as JSON (UTF-8) or 415
    cors: bool = False  # open to the configured browser origins (POST, no credentials)
    body_limit: Callable[[Settings], int] | None = None  # None: request_max_bytes
    # The route's own handler on the body the edge read (TELEMETRY_LEAN_INGEST): the same validation, service
    # call and answers as the FastAPI route, without its per-request routing, dependency solving and Request
    # objects. The route stays declared as it is (OpenAPI, and the path taken with lean_ingest off).
    lean: LeanHandler | None = None

    def max_body_bytes(self, settings: Settings) -> int:
        return self.body_limit(settings) if self.body_limit is not None else settings.request_max_bytes


OPEN = RoutePolicy()


@dataclass(frozen=True)
class PolicyDependency(Depends):
    """A route dependency that carries the route's RoutePolicy (found by edge.py, kept by include_router)."""

    policy: RoutePolicy = field(default=OPEN, kw_only=True)


_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key with the route's scope (ingest, read or admin). Unused when no key is configured.",
)
IngestBearer = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer, scopes=["ingest"])]
ReadBearer = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer, scopes=["read"])]
AdminBearer = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer, scopes=["admin"])]


def _checked(request: Request, scope: Scope) -> ApiKey:
    # The edge has checked it already for a policy route; a route mounted without the edge checks here.
    done = request.scope.get("state", {}).get("api_key")
    if isinstance(done, ApiKey) and done.allows(scope):
        return done
    return authorize(request, bearer_token(request), scope)


async def ingest_key(request: Request, credentials: IngestBearer = None) -> ApiKey:
    """The caller's key, with the ingest scope (the signature documents the bearer scheme in OpenAPI)."""
    return _checked(request, "ingest")


async def read_key(request: Request, credentials: ReadBearer = None) -> ApiKey:
    return _checked(request, "read")


async def admin_key(request: Request, credentials: AdminBearer = None) -> ApiKey:
    return _checked(request, "admin")


async def _no_key() -> None:
    return None


def declare(policy: RoutePolicy) -> PolicyDependency:
    """The dependency that declares a route's policy."""
    if policy.scope is None or policy.key_in_body:
        return PolicyDependency(_no_key, policy=policy)
    check = {"ingest": ingest_key, "read": read_key, "admin": admin_key}[policy.scope]
    return PolicyDependency(check, policy=policy)


def policy_of(route: BaseRoute | RouteContext) -> RoutePolicy:
    dependencies = getattr(route, "dependencies", None) or ()  # a plain Starlette route has none
    return next((d.policy for d in dependencies if isinstance(d, PolicyDependency)), OPEN)


def posthog_body_limit(settings: Settings) -> int:
    # PostHog's batches are read their own bounded way (decompressed size capped), so they get their own limit.
    return max(settings.request_max_bytes, settings.posthog_max_body_bytes)


# The JSON ingest routes declare it with their own lean handler: declare(replace(INGEST_JSON_POLICY, lean=...)).
INGEST_JSON_POLICY = RoutePolicy(scope="ingest", json_body=True, cors=True)
READ = declare(RoutePolicy(scope="read"))
ADMIN = declare(RoutePolicy(scope="admin"))
ADMIN_JSON = declare(RoutePolicy(scope="admin", json_body=True))
SEGMENT_INGEST = declare(RoutePolicy(scope="ingest", key_in_body=True, cors=True))
POSTHOG_INGEST = declare(
    RoutePolicy(scope="ingest", key_in_body=True, query_key="token", cors=True, body_limit=posthog_body_limit)
)
