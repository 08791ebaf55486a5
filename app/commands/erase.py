"""`python -m app erase --user-id ID`: remove every event of one user (the same path as POST /v1/erasures)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "erase",
        help="erase every event of one user; recorded (by SHA-256) in the erasures table",
        description="Idempotent: a second erasure of the same user removes 0 events. Prints how many were removed.",
    )
    parser.add_argument("--user-id", required=True)
    parser.add_argument("--suppress", action="store_true", help="also refuse this user's later events (422)")
    parser.add_argument("--database-url", default=None, help="default: TELEMETRY_DATABASE_URL")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from app.bootstrap import open_store
    from app.config import Settings
    from app.models import InvalidEvent
    from app.services.erasure import erase_user

    settings = Settings() if args.database_url is None else Settings(database_url=args.database_url)
    repository = open_store(settings)
    try:
        erasure = erase_user(repository, args.user_id, key_name="cli", suppress=args.suppress)
    except InvalidEvent as exc:
        print(f"erase: {exc}", file=sys.stderr)
        return 2
    finally:
        repository.close()
    print(f"erased {erasure.events_removed} events of user sha256:{erasure.user_id_sha256}"
          + (" (later events refused)" if erasure.suppressed else ""))  # fmt: skip
    return 0
