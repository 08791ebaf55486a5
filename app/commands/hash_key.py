"""`python -m app hash-key`: the SHA-256 of an API key, as TELEMETRY_API_KEYS stores it."""

from __future__ import annotations

import argparse
import secrets
import sys
from typing import Any


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "hash-key", help="print the SHA-256 of an API key for TELEMETRY_API_KEYS"
    )
    parser.add_argument("key", nargs="?", help="the key; '-' reads it from stdin; none: make a new random key")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from app.api.access import hash_key

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
