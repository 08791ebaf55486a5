"""Command line: `python -m app serve` (and the other subcommands registered here)."""

from __future__ import annotations

import argparse
import os
import signal
from collections.abc import Sequence
from types import FrameType
from typing import Any


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    """SIGTERM is how a service is asked to stop: once uvicorn has drained and committed, exit 0, not -15.

    uvicorn re-raises the signal after its graceful shutdown; this handler (restored by uvicorn then)
    turns it into a normal exit. Before uvicorn takes over the signal, nothing has been acknowledged yet.
    """
    raise SystemExit(0)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    if args.database_url:
        os.environ["TELEMETRY_DATABASE_URL"] = args.database_url
    from app.config import Settings
    from app.logging_config import configure_logging

    settings = Settings()
    configure_logging(settings.log_level)
    signal.signal(signal.SIGTERM, _exit_cleanly)
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": int(settings.shutdown_timeout_s),
        "server_header": False,
    }
    if args.workers > 1:
        # Before any worker imports prometheus_client: /metrics must sum over the workers.
        from app.observability.worker_metrics import prepare_multiprocess_dir, run_workers

        metrics_dir, owned = prepare_multiprocess_dir(settings.metrics_multiproc_dir)
        run_workers(uvicorn.Config("app.main:app", **options), metrics_dir, owned)
    else:
        uvicorn.run("app.main:app", **options)
    return 0


def _hash_key(args: argparse.Namespace) -> int:
    import secrets
    import sys

    from app.api.security import hash_key

    if args.key == "-":
        key = sys.stdin.readline().strip()
    elif args.key:
        key = args.key
    else:
        key = secrets.token_urlsafe(32)
        print(f"key:    {key}")  # shown once: give it to the client, keep only the hash
    print(f"sha256: {hash_key(key)}" if not args.key else hash_key(key))
    print(
        "set e.g. TELEMETRY_API_KEYS='NAME:" + hash_key(key) + ":ingest' (scopes ingest, read, admin; + joins them)",
        file=sys.stderr,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description="Telemetry Mini Service")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--database-url", default=None, help="overrides TELEMETRY_DATABASE_URL")
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(handler=_serve)

    hash_key = commands.add_parser("hash-key", help="print the SHA-256 of an API key for TELEMETRY_API_KEYS")
    hash_key.add_argument("key", nargs="?", help="the key; '-' reads it from stdin; none: make a new random key")
    hash_key.set_defaults(handler=_hash_key)

    from app.commands import erase, export, import_events, report, retention, simulate

    for command in (simulate, report, export, import_events, erase, retention):
        command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = args.handler
    return int(handler(args))
