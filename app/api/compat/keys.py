"""SDK write keys (Segment writeKey, PostHog api_key) checked as ingest-scope API keys."""

from __future__ import annotations

import base64
import binascii

from starlette.requests import Request

from app.api.compat.ingest import SdkProblem
from app.api.problems import ApiProblem
from app.api.security import authorize, bearer_token

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


def header_key(request: Request) -> str | None:
    """A key sent in the Authorization header: the Basic user, else a bearer token."""
    return basic_auth_user(request.headers.get("authorization")) or bearer_token(request)


def check_ingest_key(request: Request, key: str | None) -> None:
    """Accept the SDK's key or raise a problem: 401 unknown key, 403 key without the ingest scope, 429 rate limit.

    The same check as the JSON API's (app.api.security.authorize): with no API keys configured the service
    runs in open mode and accepts every key, or none.
    """
    try:
        authorize(request, key, "ingest")
    except ApiProblem as exc:
        detail = _UNAUTHENTICATED if exc.status == 401 else exc.detail
        raise SdkProblem(exc.status, exc.slug, detail, headers=exc.headers) from exc
