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
    # v2: removal by retention and per-user erasure. DELETE on events passes only in a transaction that holds
    # a removal_marker row (inserted and deleted again before commit, so no other transaction ever sees it),
    # and only two SECURITY DEFINER functions write that table: a role with SELECT and INSERT on events can
    # erase through them, and nothing else. Erasures are recorded append-only, by digest.
    """
    CREATE TABLE removal_marker (
        txid    bigint PRIMARY KEY,
        purpose text NOT NULL CHECK (purpose IN ('erasure', 'retention'))
    );
    REVOKE ALL ON removal_marker FROM PUBLIC;
    CREATE TABLE erasures (
        seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        erased_at      timestamptz NOT NULL,
        user_id_sha256 text NOT NULL,             -- hex SHA-256 of the user_id, never the id itself
        events_removed bigint NOT NULL,
        key_name       text NOT NULL,             -- the API key that asked, or 'cli'
        suppressed     boolean NOT NULL           -- later events of this user are refused
    );
    CREATE TABLE suppressed_users (
        user_id_sha256 text PRIMARY KEY,
        since          timestamptz NOT NULL
    );
    CREATE FUNCTION erasures_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'erasures are append-only: % refused', TG_OP
            USING ERRCODE = 'integrity_constraint_violation';
    END
    $$;
    CREATE TRIGGER erasures_refuse_update_delete BEFORE UPDATE OR DELETE OR TRUNCATE ON erasures
        FOR EACH STATEMENT EXECUTE FUNCTION erasures_refuse_change();
    CREATE FUNCTION events_guard_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM removal_marker WHERE txid = txid_current()) THEN
            RETURN NULL;
        END IF;
        RAISE EXCEPTION 'events are immutable: DELETE refused'
            USING ERRCODE = 'integrity_constraint_violation';
    END
    $$;
    DROP TRIGGER events_refuse_update_delete ON events;
    CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events
        FOR EACH ROW EXECUTE FUNCTION events_refuse_change();
    CREATE TRIGGER events_guard_delete BEFORE DELETE ON events
        FOR EACH STATEMENT EXECUTE FUNCTION events_guard_delete();
    CREATE FUNCTION telemetry_erase_user(p_user_id text, p_key_name text, p_suppress boolean, p_at timestamptz)
        RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
    DECLARE
        removed bigint;
        digest text := encode(sha256(convert_to(p_user_id, 'UTF8')), 'hex');
    BEGIN
        INSERT INTO removal_marker (txid, purpose) VALUES (txid_current(), 'erasure');
        DELETE FROM events WHERE user_id = p_user_id;
        GET DIAGNOSTICS removed = ROW_COUNT;
        DELETE FROM removal_marker WHERE txid = txid_current();
        INSERT INTO erasures (erased_at, user_id_sha256, events_removed, key_name, suppressed)
            VALUES (p_at, digest, removed, p_key_name, p_suppress);
        IF p_suppress THEN
            INSERT INTO suppressed_users (user_id_sha256, since) VALUES (digest, p_at) ON CONFLICT DO NOTHING;
        END IF;
        RETURN removed;
    END
    $$;
    CREATE FUNCTION telemetry_remove_before(p_cutoff timestamptz, p_max_rows integer)
        RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
    DECLARE
        removed bigint;
    BEGIN
        INSERT INTO removal_marker (txid, purpose) VALUES (txid_current(), 'retention');
        DELETE FROM events WHERE event_id IN (
            SELECT event_id FROM events WHERE "timestamp" < p_cutoff
            ORDER BY "timestamp", event_id LIMIT p_max_rows FOR UPDATE SKIP LOCKED);
        GET DIAGNOSTICS removed = ROW_COUNT;
        DELETE FROM removal_marker WHERE txid = txid_current();
        RETURN removed;
    END
    $$;
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
