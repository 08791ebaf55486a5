"""Schemathesis hooks (SCHEMATHESIS_HOOKS=tests.e2e.schemathesis_hooks): keep *positive* cases valid where
JSON Schema cannot say what valid is, so the positive_data_acceptance check stays strict everywhere else.

What the schema cannot express: the timestamp window (relative to the server clock), the metadata limits
(depth, keys in all, size, NUL, 64-bit integers), `since` before `until`, and that a cursor is opaque (only one
the service issued is valid). Negative cases are left untouched.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import schemathesis
from schemathesis import GenerationMode

from app.models import InvalidEvent, UserActionEvent
from app.services.event_limits import EventLimits, check_event


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utc(text: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
        return moment.astimezone(UTC) if moment.tzinfo else None
    except (ValueError, OverflowError):
        return None


def _valid_event(item: Any) -> None:
    if not isinstance(item, dict):
        return
    now = datetime.now(UTC)
    if isinstance(item.get("timestamp"), str):
        item["timestamp"] = _iso(now - timedelta(hours=1))
    if isinstance(item.get("sent_at"), str):
        item["sent_at"] = _iso(now)
    try:
        event = UserActionEvent(
            event_id=uuid4(),
            user_id=item["user_id"],
            action=item["action"],
            source=item["source"],
            timestamp=now,
            metadata=item.get("metadata") or {},
            received_at=now,
        )
        check_event(event, EventLimits())
    except InvalidEvent:
        item["metadata"] = {}
    except (KeyError, TypeError, ValueError):
        return


def _valid_query(query: dict[str, Any]) -> None:
    query.pop("cursor", None)
    for name in ("since", "until"):
        if name in query and _utc(query[name]) is None:
            del query[name]
    since, until = _utc(query.get("since")), _utc(query.get("until"))
    if since is not None and until is not None and since >= until:
        del query["until"]


@schemathesis.hook
def map_case(context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    if case.meta is None or case.meta.generation.mode is not GenerationMode.POSITIVE:
        return case
    if isinstance(case.query, dict):
        _valid_query(case.query)
    if isinstance(case.body, dict):
        if isinstance(case.body.get("events"), list):
            for item in case.body["events"]:
                _valid_event(item)
        else:
            _valid_event(case.body)
    return case
