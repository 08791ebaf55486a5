"""`python -m app export`: every stored event (optionally filtered) as NDJSON or CSV, to stdout or a file."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from app.export_format import export_chunks


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "export", help="export stored events as NDJSON, CSV or Parquet (streamed, constant memory)"
    )
    parser.add_argument("--database-url", default=None, help="default: TELEMETRY_DATABASE_URL")
    parser.add_argument("--format", choices=("ndjson", "csv", "parquet"), default="ndjson")
    parser.add_argument("--out", type=Path, default=None, help="file to write (default: stdout)")
    parser.add_argument("--user-id", default=None)
    parser.add_argument("--action", default=None)
    parser.add_argument("--source", default=None)
    parser.add_argument("--since", type=_aware, default=None, help="inclusive, ISO 8601 with a timezone")
    parser.add_argument("--until", type=_aware, default=None, help="exclusive, ISO 8601 with a timezone")
    parser.set_defaults(handler=run)


def _aware(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date-time: {text!r}") from exc
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a timezone, e.g. {text}Z")
    return moment


def run(args: argparse.Namespace) -> int:
    from app.bootstrap import open_store
    from app.config import Settings
    from app.repository import parse_database_url
    from app.repository.port import EventFilter, EventQuery

    settings = Settings() if args.database_url is None else Settings(database_url=args.database_url)
    target = parse_database_url(settings.database_url)
    if target.sqlite_path is not None and not target.sqlite_path.is_file():
        print(f"export: no database at {target.sqlite_path}", file=sys.stderr)
        return 2
    event_filter = EventFilter(args.user_id, args.action, args.source, args.since, args.until)
    repository = open_store(settings)
    if args.format == "parquet":
        return _parquet(repository, event_filter, args.out)
    try:
        events = repository.iter_events(EventQuery(event_filter, limit=1000))
        if args.out is None:
            try:
                _write(export_chunks(events, args.format), sys.stdout.buffer)
            except BrokenPipeError:  # `... | head`: the reader has all it wants
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return 0
        else:
            with args.out.open("wb") as out:
                _write(export_chunks(events, args.format), out)
    finally:
        repository.close()
    return 0


def _parquet(repository: Any, event_filter: Any, out: Path | None) -> int:
    from app.export_parquet import ROW_GROUP_ROWS, write_parquet

    try:
        row_groups = repository.iter_rows(event_filter, ROW_GROUP_ROWS)
        if out is None:
            write_parquet(row_groups, sys.stdout.buffer)
        else:
            with out.open("wb") as sink:
                write_parquet(row_groups, sink)
    finally:
        repository.close()
    return 0


def _write(chunks: Any, out: BinaryIO) -> None:
    for chunk in chunks:
        out.write(chunk)
    out.flush()
