"""`python -m app import FILE|-`: backfill events (what `export` writes, or Segment/PostHog messages a line)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from app.commands.progress import progress_bar


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "import",
        help="import events through the API's rules: what export writes, or Segment/PostHog messages a line",
        description="Idempotent by event_id: re-running an import stores nothing twice. A bad line is reported"
        " with its number and the rest goes on (--strict: stop there). Exit 1 when any line was not stored.",
    )
    parser.add_argument("file", help="the file to read; '-' reads stdin (ndjson or csv)")
    parser.add_argument("--database-url", default=None, help="default: TELEMETRY_DATABASE_URL")
    parser.add_argument(
        "--format", choices=("ndjson", "csv", "parquet"), default=None, help="default: from the file name (ndjson)"
    )
    parser.add_argument("--strict", action="store_true", help="stop at the first bad line")
    parser.add_argument("--batch-size", type=int, default=5000, help="events per transaction")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def _format_of(file: str, given: str | None) -> str:
    if given:
        return given
    suffix = Path(file).suffix.lower()
    return {".csv": "csv", ".parquet": "parquet"}.get(suffix, "ndjson")


def run(args: argparse.Namespace) -> int:
    from app.bootstrap import event_limits
    from app.config import Settings
    from app.import_format import SdkSources, parquet_records, parquet_rows, text_records
    from app.repository import open_repository
    from app.services.event_service import EventService
    from app.services.importing import QuietLog, QuietMetrics, RepositoryWriter, import_records

    settings = Settings()
    database_url = args.database_url or settings.database_url
    fmt = _format_of(args.file, args.format)
    if args.batch_size < 1:
        print("import: --batch-size must be at least 1", file=sys.stderr)
        return 2
    if args.file == "-":
        if fmt == "parquet":
            print("import: Parquet needs a file (it is read from its footer), not stdin", file=sys.stderr)
            return 2
        stream = sys.stdin.buffer
        total: int | None = None
    else:
        path = Path(args.file)
        if not path.is_file():
            print(f"import: no file {path}", file=sys.stderr)
            return 2
        total = parquet_rows(path) if fmt == "parquet" else path.stat().st_size
        stream = path.open("rb")
    sources = SdkSources(settings.segment_source, settings.posthog_source)
    bar = progress_bar(total, "ev" if fmt == "parquet" else "B", "import", not args.quiet)
    if fmt == "parquet":
        records = parquet_records(path, sources, bar.update)
    else:
        records = text_records(stream, fmt, sources, bar.update)  # type: ignore[arg-type]

    def report(number: int, message: str) -> None:
        print(f"\n{args.file}:{number}: {message}", file=sys.stderr)

    # A bulk load: NORMAL survives a crash of this process, and a re-run after one stores nothing twice.
    repository = open_repository(database_url, synchronous="NORMAL", busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    service = EventService(
        RepositoryWriter(repository), repository, QuietMetrics(), QuietLog(), limits=event_limits(settings)
    )
    started = time.perf_counter()
    try:
        summary = asyncio.run(
            import_records(service, records, batch_size=args.batch_size, strict=args.strict, on_problem=report)
        )
    finally:
        bar.close()
        repository.close()
        if stream is not sys.stdin.buffer:
            stream.close()
    seconds = time.perf_counter() - started
    stored = summary.accepted + summary.duplicate
    counts = ", ".join(f"{k} {v}" for k, v in summary.counts().items())
    print(f"import: {summary.lines} lines in {seconds:.1f} s ({stored / max(seconds, 1e-9):,.0f} events/s): {counts}",
          file=sys.stderr)  # fmt: skip
    if summary.stopped_at is not None:
        print(f"import: stopped at line {summary.stopped_at} (--strict)", file=sys.stderr)
    return 0 if summary.conflict == 0 and summary.invalid == 0 else 1
