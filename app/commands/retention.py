"""`python -m app retention [--dry-run]`: remove the events older than the retention period now."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "retention",
        help="remove events older than TELEMETRY_RETENTION_DAYS (or --days), in small chunks",
        description="The same pass the service runs in the background; with several replicas on PostgreSQL,"
        " one pass at a time (a pass that finds another running does nothing and says so).",
    )
    parser.add_argument("--days", type=float, default=None, help="default: TELEMETRY_RETENTION_DAYS")
    parser.add_argument("--dry-run", action="store_true", help="count what would be removed, remove nothing")
    parser.add_argument("--database-url", default=None, help="default: TELEMETRY_DATABASE_URL")
    parser.set_defaults(handler=run)


class _Printed:
    """The retention metrics port for a command: the numbers go to the summary line instead."""

    def retention_removed(self, count: int) -> None:
        return None

    def retention_finished(self, at: Any) -> None:
        return None

    def oldest_event_age(self, seconds: float | None) -> None:
        return None


def run(args: argparse.Namespace) -> int:
    from app.bootstrap import open_store
    from app.config import Settings
    from app.services.retention import Retention

    settings = Settings() if args.database_url is None else Settings(database_url=args.database_url)
    days = args.days if args.days is not None else settings.retention_days
    if days is None or days <= 0:
        print("retention: no period: set TELEMETRY_RETENTION_DAYS or pass --days N (N > 0)", file=sys.stderr)
        return 2
    repository = open_store(settings)
    metrics = _Printed()
    try:
        retention = Retention(repository, days, metrics, chunk_rows=settings.retention_chunk_rows)
        report = retention.run_pass(dry_run=args.dry_run)
    finally:
        repository.close()
    cutoff = report.cutoff.isoformat().replace("+00:00", "Z")
    if report.dry_run:
        print(f"retention: would remove {report.removed} events older than {cutoff} (dry run)")
    elif not report.ran:
        print("retention: another replica is running a pass; nothing done")
    else:
        print(f"retention: removed {report.removed} events older than {cutoff} in {report.chunks} chunks,"
              f" {report.seconds:.1f} s")  # fmt: skip
    return 0
