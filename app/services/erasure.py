"""Use case: erase one user's events (the law's right to erasure), and refuse their later events if asked.

An erasure is recorded by the store (append-only) with when, how many, which key asked and the SHA-256 of
the user_id, never the id itself. Suppression keeps only that digest: an SDK still sending for the user
cannot bring the data back, and the store still holds nothing that names them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

from app.models import InvalidEvent
from app.repository.port import Erasure, EventRepository, user_digest
from app.services.rejections import RejectionReason


class UserErased(InvalidEvent):
    """The event's user was erased with suppression: 422 user-erased, counted as user_erased."""

    def __init__(self) -> None:
        super().__init__(
            "this user_id was erased and its events are refused", reason=RejectionReason.USER_ERASED, field="user_id"
        )


class Suppressions:
    """The digests of suppressed users, as the store lists them; refreshed by the lifecycle task.

    Ingestion asks `refuses(user_id)` for every event, so the set is held in memory and the check costs
    nothing while it is empty. Another replica's erasure is seen after the next refresh (refresh_s).
    """

    def __init__(self, load: Callable[[], frozenset[str]]) -> None:
        self._load = load
        self._digests: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def refresh(self) -> None:
        digests = self._load()
        with self._lock:
            self._digests = digests

    def add(self, digest: str) -> None:
        with self._lock:
            self._digests = self._digests | {digest}

    def refuses(self, user_id: str) -> bool:
        digests = self._digests
        return bool(digests) and user_digest(user_id) in digests


def _utc_now() -> datetime:
    return datetime.now(UTC)


def erase_user(
    repository: EventRepository,
    user_id: str,
    *,
    key_name: str,
    suppress: bool = False,
    suppressions: Suppressions | None = None,
    clock: Callable[[], datetime] = _utc_now,
) -> Erasure:
    """Remove every event of user_id in one transaction; the answer says how many (0 when already erased)."""
    if not user_id:
        raise InvalidEvent("user_id must not be empty", field="user_id")
    erasure = repository.erase_user(user_id, key_name=key_name, suppress=suppress, at=clock())
    if suppress and suppressions is not None:
        suppressions.add(erasure.user_id_sha256)
    return erasure
