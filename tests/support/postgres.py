"""Helpers for tests against the real PostgreSQL server: a fresh schema per test, dropped afterwards.

The server is the machine's (127.0.0.1:5432, trust auth, database `test`), or TELEMETRY_TEST_POSTGRES_URL.
Tests skip with a reason only when no server answers; tests/conftest.py turns that skip into a failure in CI.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import psycopg
import pytest

ADMIN_URL = os.environ.get("TELEMETRY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

# Hypothesis takes any change of the global `random` state during a draw for a strategy that uses `random`, and
# warns. psycopg_pool's own threads draw from it (a jitter on each new connection's lifetime) whenever a pool
# grows, which can fall within a draw of a property test on PostgreSQL: a warning about the pool's threads, not
# about our strategies, which the same tests on SQLite still check.
POOL_DRAWS_RANDOM = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning"
)


def server_answers() -> str | None:
    """None when the server answers, else the reason it does not."""
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"no PostgreSQL server answers at {ADMIN_URL}: {exc}".strip()
    return None


def require_server() -> None:
    reason = server_answers()
    if reason is not None:
        pytest.skip(reason)


def url_with_schema(schema: str, base: str = ADMIN_URL) -> str:
    """A URL whose connections see `schema` first (libpq `options=-csearch_path=...`)."""
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options={quote(f'-csearch_path={schema}')}"


@contextmanager
def fresh_schema(prefix: str = "t") -> Iterator[str]:
    """Create a uniquely named schema, yield a URL that uses it, drop it (and everything in it) after."""
    require_server()
    schema = f"{prefix}_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield url_with_schema(schema)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
