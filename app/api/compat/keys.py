"""SDK write keys (Segment writeKey, PostHog api_key) checked as ingest-scope API keys."""

from __future__ import annotations

import base64
import binascii

from starlette.datastructures import QueryParams
from starlette.requests import Request

from app.api.access import ApiKey
from app.api.compat.ingest import SdkProblem
from app.api.problems import ApiProblem
from app.api.security import authorize, bearer_from

_UNAUTHENTICATED = (
    "A valid write key with the ingest scope is required: as the HTTP Basic user (Segment), "
    "`writeKey` (Segment) or `api_key` (PostHog) in the body, or Authorization: Bearer <key>."
)


def basic_auth_user(header: str | None) -> str | None:
    """The user part of `Authorization: Basic base64(user:password)`; Segment sends its write key there."""
    if not header:
        return None
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "basic" or not credentials:
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user = decoded.partition(":")[0]
    return user or None


def key_before_body(authorization: str | None, query_string: bytes, query_key: str | None) -> str | None:
    """A key that can be checked before the body is read: the Basic user, a bearer token, or `query_key`."""
    key = basic_auth_user(authorization) or bearer_from(authorization)
    if key is None and query_key is not None:
        key = QueryParams(query_string).get(query_key) or None
    return key


def checked_before_body(request: Request) -> bool:
    """True when the edge found and accepted the key before the body (key_before_body); then the route
    neither looks for one in the body nor reads the body out of the shared decoding budget."""
    return isinstance(request.scope.get("state", {}).get("api_key"), ApiKey)


def sdk_refusal(exc: ApiProblem) -> SdkProblem:
    """An access refusal in the SDKs' form: the `code` and `message` keys, the ways an SDK may send its key."""
    detail = _UNAUTHENTICATED if exc.status == 401 else exc.detail
    return SdkProblem(exc.status, exc.slug, detail, headers=exc.headers)


def check_ingest_key(request: Request, key: str | None) -> None:
    """Accept the SDK's key or raise a problem: 401 unknown key, 403 key without the ingest scope, 429 rate limit.

    The same check as the JSON API's (app.api.security.authorize): with no API keys configured the service
    runs in open mode and accepts every key, or none.
    """
    try:
        authorize(request, key, "ingest")
    except ApiProblem as exc:
        raise sdk_refusal(exc) from exc
