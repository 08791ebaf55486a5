"""Per-user erasure over HTTP: POST /v1/erasures removes every event of a user, GET /v1/erasures lists the record.

Both need the admin scope. The answer and the record name the user only by the SHA-256 of the user_id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from starlette.responses import Response

from app.api.access import ApiKey
from app.api.deps import ACCESS_PROBLEMS, BODY_PROBLEMS, runtime_of
from app.api.policy import ADMIN, ADMIN_JSON, admin_key
from app.api.schemas import JsonBody, UserId
from app.api.strict_json import JsonRoute
from app.repository.port import Erasure
from app.services.erasure import erase_user
from app.utc_text import to_utc_text

router = APIRouter(prefix="/v1", tags=["erasures"], route_class=JsonRoute)
AdminKey = Annotated[ApiKey, Depends(admin_key)]  # checked by the edge (the route's policy); read for its name


class ErasureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: UserId
    suppress: StrictBool = Field(
        default=False,
        description="Also refuse this user's later events (422 user-erased), so an SDK still sending cannot bring"
        " the data back. Only the SHA-256 of the user_id is kept for it.",
    )


class ErasureOut(BaseModel):
    erased_at: datetime
    user_id_sha256: str = Field(description="Hex SHA-256 of the UTF-8 user_id: the id itself is never stored")
    events_removed: int = Field(description="0 when nothing was left to remove (a repeated erasure)")
    key_name: str = Field(description="The API key that asked (or 'cli' for python -m app erase)")
    suppressed: bool


class ErasureListOut(BaseModel):
    erasures: list[ErasureOut]


def _json(erasure: Erasure) -> dict[str, object]:
    return {
        "erased_at": to_utc_text(erasure.erased_at),
        "user_id_sha256": erasure.user_id_sha256,
        "events_removed": erasure.events_removed,
        "key_name": erasure.key_name,
        "suppressed": erasure.suppressed,
    }


@router.post(
    "/erasures",
    summary="Erase every event of one user (admin); idempotent: a second call removes 0",
    response_model=ErasureOut,
    dependencies=[ADMIN_JSON],
    responses={**ACCESS_PROBLEMS, **BODY_PROBLEMS},
)
def create_erasure(body: ErasureIn, request: Request, key: AdminKey) -> Response:
    runtime = runtime_of(request)
    storage = runtime.storage
    erasure = erase_user(
        storage.repository, body.user_id, key_name=key.name, suppress=body.suppress, suppressions=storage.suppressions
    )
    runtime.metrics.user_erased(erasure.events_removed)
    runtime.log.info(
        "user_erased",
        user_id_sha256=erasure.user_id_sha256,
        events_removed=erasure.events_removed,
        key_name=key.name,
        suppressed=erasure.suppressed,
    )
    return JsonBody(_json(erasure))


@router.get(
    "/erasures",
    summary="Every erasure carried out, oldest first (admin)",
    response_model=ErasureListOut,
    dependencies=[ADMIN],
    responses=ACCESS_PROBLEMS,
)
def list_erasures(request: Request) -> Response:
    return JsonBody({"erasures": [_json(e) for e in runtime_of(request).storage.repository.erasures()]})
