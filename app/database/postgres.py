"""PostgreSQL: connection pool, schema creation and migration with a recorded version.

Several service replicas may start at once against one database; each runs `migrate`, and a
transaction-scoped advisory lock makes them take turns, so exactly one applies each version.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from psycopg_pool import ConnectionPool

# Each entry moves the schema one version up. Never edit a released entry: append a new one.
#
# metadata is stored twice on purpose: `metadata` (jsonb) is what SQL and the analysis package query;
# `metadata_text` is the JSON text exactly as the service serialised it, and it is what reads return.
# jsonb normalises key order and number spelling (1e2 -> 100), so reading jsonb back would not give
# the client's object key for key in the order sent, and export would differ from SQLite's.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE events (
        seq           bigint GENERATED ALWAYS AS IDENTITY,   -- insertion order, internal
        event_id      uuid PRIMARY KEY,                      -- unique across every replica
        user_id       text NOT NULL,
        action        text NOT NULL,
        source        text NOT NULL,
        "timestamp"   timestamptz NOT NULL,
        received_at   timestamptz NOT NULL,                  -- server clock
        sent_at       timestamptz,                           -- client clock at send time, optional
        metadata      jsonb NOT NULL CHECK (jsonb_typeof(metadata) = 'object'),
        metadata_text text NOT NULL                          -- the same object as JSON text, as written
    );
    CREATE UNIQUE INDEX events_seq ON events (seq);          -- the analysis samples every k-th row by seq
    CREATE INDEX events_timestamp ON events ("timestamp", event_id);
    CREATE INDEX events_user_timestamp ON events (user_id, "timestamp", event_id);
    CREATE INDEX events_action_timestamp ON events (action, "timestamp", event_id);
    CREATE FUNCTION events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'events are immutable: % refused', TG_OP
            USING ERRCODE = 'integrity_constraint_violation';
    END
    $$;
    CREATE TRIGGER events_refuse_update_delete BEFORE UPDATE OR DELETE ON events
        FOR EACH ROW EXECUTE FUNCTION events_refuse_change();
    CREATE TRIGGER events_refuse_truncate BEFORE TRUNCATE ON events
        FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)

# Advisory lock keys are per database; salting with the schema lets schemas migrate independently.
_MIGRATION_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtext('telemetry-migrate:' || current_schema()))"


def connect(url: str, *, connect_timeout_s: float = 5.0) -> psycopg.Connection[tuple[object, ...]]:
    """One plain connection (autocommit off), for migrations and tools."""
    return psycopg.connect(url, connect_timeout=max(1, round(connect_timeout_s)))


def migrate(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    """Bring the schema to SCHEMA_VERSION; safe to call from several processes at once."""
    with conn.transaction():
        conn.execute(_MIGRATION_LOCK_SQL)
        # Checked, not CREATE ... IF NOT EXISTS: a role without CREATE on the schema (SELECT and INSERT
        # only) can then start against a database that is already up to date.
        found = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
        if not (found and found[0]):
            conn.execute("CREATE TABLE schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL)")
        row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
        current = int(row[0]) if row else 0  # type: ignore[call-overload]
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"database schema is version {current}, newer than this service's {SCHEMA_VERSION}: upgrade"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            conn.execute(MIGRATIONS[version - 1])
            conn.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (%s, %s)",
                (version, datetime.now(UTC)),
            )
    return SCHEMA_VERSION


def open_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 8,
    acquire_timeout_s: float = 2.0,
    connect_timeout_s: float = 5.0,
) -> ConnectionPool[psycopg.Connection[tuple[object, ...]]]:
    """A pool that hands out only live connections.

    `check` costs one round trip per borrow and buys recovery after a database restart: a dead
    connection is replaced instead of failing the next request. A borrow waits at most
    `acquire_timeout_s` and then raises PoolTimeout, which callers turn into a 503.
    """
    pool: ConnectionPool[psycopg.Connection[tuple[object, ...]]] = ConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        kwargs={"connect_timeout": max(1, round(connect_timeout_s)), "autocommit": False},
        check=ConnectionPool.check_connection,
        timeout=acquire_timeout_s,
        # The pool's retries back off exponentially (1 s, 2 s, 4 s...); giving up early lets the next
        # borrow start a fresh attempt, so recovery after a long outage takes seconds, not minutes.
        reconnect_timeout=5.0,
        open=False,
        name="telemetry",
    )
    pool.open(wait=False)
    return pool
