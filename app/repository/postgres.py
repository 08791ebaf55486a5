"""EventRepository on PostgreSQL: one database shared by many service replicas.

The unique key on event_id is what makes idempotency hold across replicas: whichever replica inserts
first wins, and every other one sees the stored row and classifies its own copy as DUPLICATE or CONFLICT.
Thread-safe: calls borrow a connection from a pool, so one instance serves the writer and the readers.

Several replicas may start at once against one database; each runs `migrate`, and a transaction-scoped
advisory lock makes them take turns, so exactly one applies each version. psycopg's exceptions are
translated into the port's: a lost or unreachable server is DatabaseUnavailable (a StorageUnavailable),
any other driver error StorageError.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from app.json_codec import dump_json, load_json
from app.models import UserActionEvent
from app.repository.port import (
    AddResult,
    AddStatus,
    Cursor,
    Erasure,
    EventFilter,
    EventPage,
    EventQuery,
    EventRow,
    EventStats,
    Order,
    StatsQuery,
    StorageError,
    StorageUnavailable,
    classify_existing,
    iterate_pages,
    user_digest,
)

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
    statement_timeout_s: float | None = None,
    name: str = "telemetry",
) -> ConnectionPool[psycopg.Connection[tuple[object, ...]]]:
    """A pool that hands out only live connections, each in a UTC session (and a statement timeout, if given).

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
        configure=_session_setup(statement_timeout_s),
        open=False,
        name=name,
    )
    pool.open(wait=False)
    return pool


Connection = psycopg.Connection[tuple[Any, ...]]
T = TypeVar("T")


def _session_setup(statement_timeout_s: float | None) -> Callable[[psycopg.Connection[tuple[object, ...]]], None]:
    def configure(conn: psycopg.Connection[tuple[object, ...]]) -> None:
        # Our own session time zone, whatever the database's or role's default: timestamptz values then
        # always come back in UTC, and no stored instant is out of range when converted (9999-12-31T23:30Z
        # is year 10000 in a Europe/Berlin session, and every read of it failed).
        conn.execute("SET TIME ZONE 'UTC'")
        if statement_timeout_s:
            timeout_ms = max(1, round(statement_timeout_s * 1000))
            conn.execute(f"SET statement_timeout = {timeout_ms}")
            # A reader that stops pulling rows from an open cursor is cut off too.
            conn.execute(f"SET idle_in_transaction_session_timeout = {timeout_ms}")
        conn.commit()

    return configure


class ReadTimedOut(StorageUnavailable):
    """A read ran past its statement timeout: the store is fine, the query was too long (503 + Retry-After)."""


class DatabaseUnavailable(StorageUnavailable):
    """PostgreSQL cannot be reached (down, restarting, network cut): nothing of the call was stored."""


_COLUMNS = 'event_id, user_id, action, source, "timestamp", received_at, sent_at, metadata_text'

# One statement text for every batch size (arrays, not a VALUES list), so the server plans it once.
# Rows go in event_id order: concurrent batches that overlap then lock keys in one order, never deadlock.
_INSERT = (
    'INSERT INTO events (event_id, user_id, action, source, "timestamp", received_at, sent_at,'
    " metadata, metadata_text)"
    " SELECT e, u, a, s, t, r, st, COALESCE(mj, m)::jsonb, m"
    " FROM unnest(%b::uuid[], %b::text[], %b::text[], %b::text[],"
    " %b::timestamptz[], %b::timestamptz[], %b::timestamptz[], %b::text[], %b::text[])"
    " AS x(e, u, a, s, t, r, st, m, mj)"
    " ORDER BY e"
    " ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)

# A failed connection makes the next calls for this long fail at once instead of each waiting for
# the pool: the writer then answers every queued request with 503 quickly rather than one by one.
_FAIL_FAST_S = 1.0


def _jsonb_text(text: str, metadata: Any) -> str | None:
    """The text for the jsonb copy when it must differ from the record: jsonb refuses \\u0000."""
    if "\\u0000" not in text:
        return None
    return dump_json(_without_nul(metadata))


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, Mapping):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(v) for v in value]
    return value


def _event(row: Sequence[Any]) -> UserActionEvent:
    return UserActionEvent(
        event_id=row[0],
        user_id=row[1],
        action=row[2],
        source=row[3],
        timestamp=row[4],
        received_at=row[5],
        sent_at=row[6],
        metadata=load_json(row[7]),
    )


# Both directions walk the same (…, timestamp, event_id) indexes, backwards for desc.
_ORDER_BY = {"asc": '"timestamp", event_id', "desc": '"timestamp" DESC, event_id DESC'}


def _where(f: EventFilter, after: Cursor | None = None, order: Order = "asc") -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column in ("user_id", "action", "source"):
        value = getattr(f, column)
        if value is None:
            continue
        if "\x00" in value:
            clauses.append("FALSE")  # text columns cannot hold NUL, so nothing matches (and no DataError)
        else:
            clauses.append(f"{column} = %s")
            params.append(value)
    if f.since is not None:
        clauses.append('"timestamp" >= %s')
        params.append(f.since)
    if f.until is not None:
        clauses.append('"timestamp" < %s')
        params.append(f.until)
    if after is not None:
        clauses.append(f'("timestamp", event_id) {"<" if order == "desc" else ">"} (%s, %s)')
        params.extend([after.timestamp, after.event_id])
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class PostgresEventRepository:
    """EventRepository on PostgreSQL through a connection pool; the schema is migrated on open."""

    def __init__(
        self,
        url: str,
        *,
        pool_max_size: int = 8,
        acquire_timeout_s: float = 2.0,
        connect_timeout_s: float = 3.0,
        startup_timeout_s: float = 30.0,
        read_pool_max_size: int = 4,
        read_statement_timeout_s: float | None = None,
    ) -> None:
        self._down_until = 0.0
        self._down_lock = threading.Lock()
        _migrate_when_reachable(url, connect_timeout_s, startup_timeout_s)
        self._pool = open_pool(
            url,
            min_size=1,
            max_size=pool_max_size,
            acquire_timeout_s=acquire_timeout_s,
            connect_timeout_s=connect_timeout_s,
        )
        # Reads and exports borrow from a pool of their own, so however many run, the writer's connections
        # stay free; each read is one short transaction under a statement timeout.
        self._read_timeout_s = read_statement_timeout_s
        self._read_pool = open_pool(
            url,
            min_size=1,
            max_size=read_pool_max_size,
            acquire_timeout_s=acquire_timeout_s,
            connect_timeout_s=connect_timeout_s,
            statement_timeout_s=read_statement_timeout_s,
            name="telemetry-reads",
        )

    @property
    def pool(self) -> ConnectionPool[Connection]:
        return self._pool

    # -- connection handling -------------------------------------------------------------------

    def _fail_fast(self) -> None:
        if time.monotonic() < self._down_until:
            raise DatabaseUnavailable("PostgreSQL unreachable (failed within the last second)")

    def _mark_down(self, exc: BaseException) -> DatabaseUnavailable:
        with self._down_lock:
            self._down_until = time.monotonic() + _FAIL_FAST_S
        return DatabaseUnavailable(f"PostgreSQL unreachable: {type(exc).__name__}: {exc}".strip())

    def _run(self, work: Callable[[Connection], T]) -> T:
        """work(conn) in one transaction on a pooled connection; a lost connection -> DatabaseUnavailable."""
        self._fail_fast()
        try:
            with self._pool.connection() as conn, conn.transaction():
                return work(conn)
        except psycopg.OperationalError as exc:  # includes PoolTimeout and server shutdown
            raise self._mark_down(exc) from exc
        except psycopg.Error as exc:
            raise _storage_error(exc) from exc

    def _read(self, work: Callable[[Connection], T]) -> T:
        """work(conn) in one transaction on the read pool. A read past its timeout, or reads waiting for
        one another, say nothing about the database: they do not mark it down for the writer."""
        self._fail_fast()
        try:
            with self._read_pool.connection() as conn, conn.transaction():
                return work(conn)
        except psycopg.errors.QueryCanceled as exc:
            raise ReadTimedOut(
                f"PostgreSQL: the read ran past its statement timeout ({self._read_timeout_s:g} s):"
                " narrow the filters or the time range"
            ) from exc
        except PoolTimeout as exc:
            raise StorageUnavailable("PostgreSQL: every read connection is busy: try again shortly") from exc
        except psycopg.OperationalError as exc:
            raise self._mark_down(exc) from exc
        except psycopg.Error as exc:
            raise _storage_error(exc) from exc

    # -- the port ------------------------------------------------------------------------------

    def add(self, events: Sequence[UserActionEvent]) -> list[AddResult]:
        if not events:
            return []
        first_index: dict[UUID, int] = {}
        for i, event in enumerate(events):
            first_index.setdefault(event.event_id, i)
        firsts = [events[i] for i in first_index.values()]
        texts = [dump_json(dict(e.metadata)) for e in firsts]  # a dict: orjson writes it without a callback
        params = (
            [e.event_id for e in firsts],
            [e.user_id for e in firsts],
            [e.action for e in firsts],
            [e.source for e in firsts],
            [e.timestamp for e in firsts],
            [e.received_at for e in firsts],
            [e.sent_at for e in firsts],
            texts,
            [_jsonb_text(t, e.metadata) for t, e in zip(texts, firsts, strict=True)],
        )

        def work(conn: Connection) -> tuple[set[UUID], dict[UUID, UserActionEvent]]:
            inserted = {row[0] for row in conn.execute(_INSERT, params).fetchall()}
            missing = [eid for eid in first_index if eid not in inserted]
            stored: dict[UUID, UserActionEvent] = {}
            if missing:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM events WHERE event_id = ANY(%s::uuid[])", (missing,)
                ).fetchall()
                stored = {row[0]: _event(row) for row in rows}
            return inserted, stored

        inserted, stored = self._run(work)
        results: list[AddResult] = []
        for i, event in enumerate(events):
            first = first_index[event.event_id]
            if first == i and event.event_id in inserted:
                results.append(AddResult(AddStatus.ACCEPTED, event))
            else:
                # Stored by another transaction, or earlier in this very batch.
                results.append(classify_existing(event, stored.get(event.event_id, events[first])))
        return results

    def get(self, event_id: UUID) -> UserActionEvent | None:
        def work(conn: Connection) -> UserActionEvent | None:
            row = conn.execute(f"SELECT {_COLUMNS} FROM events WHERE event_id = %s", (event_id,)).fetchone()
            return _event(row) if row else None

        result: UserActionEvent | None = self._read(work)
        return result

    def query(self, q: EventQuery) -> EventPage:
        where, params = _where(q.filter, q.after, q.order)
        sql = f"SELECT {_COLUMNS} FROM events{where} ORDER BY {_ORDER_BY[q.order]} LIMIT %s"
        limit = q.limit + 1  # one more than asked tells whether another page follows
        rows: list[tuple[Any, ...]] = self._read(lambda conn: conn.execute(sql, [*params, limit]).fetchall())
        items = [_event(r) for r in rows[: q.limit]]
        more = len(rows) > q.limit
        next_cursor = Cursor(items[-1].timestamp, items[-1].event_id) if more and items else None
        return EventPage(items, next_cursor)

    def iter_events(self, q: EventQuery) -> Iterator[UserActionEvent]:
        """Keyset pages, each its own short read: a client that stops reading, or goes away, holds no
        connection (a server-side cursor would keep one "idle in transaction" for as long as it waits)."""
        return iterate_pages(self, q)

    def stats(self, q: StatsQuery) -> EventStats:
        """The three breakdowns in one scan (GROUPING SETS), hence from one snapshot."""
        where, params = _where(q.filter)
        sql = (
            "SELECT GROUPING(action), GROUPING(source), action, source,"
            " date_trunc(%s, \"timestamp\", 'UTC') AS bucket, count(*)"
            f" FROM events{where}"
            " GROUP BY GROUPING SETS ((action), (source), (bucket))"
        )
        params = [q.bucket, *params]
        rows: list[tuple[Any, ...]] = self._read(lambda conn: conn.execute(sql, params).fetchall())
        by_action: dict[str, int] = {}
        by_source: dict[str, int] = {}
        by_bucket: list[tuple[datetime, int]] = []
        for action_grouped, source_grouped, action, source, bucket, count in rows:
            if not action_grouped:
                by_action[action] = count
            elif not source_grouped:
                by_source[source] = count
            else:
                by_bucket.append((bucket.astimezone(UTC), count))
        by_bucket.sort()
        return EventStats(sum(by_action.values()), by_action, by_source, by_bucket)

    def check_writable(self) -> None:
        """Raise unless the database answers and takes inserts into events (not a read-only standby)."""

        def work(conn: Connection) -> tuple[bool, bool]:
            row = conn.execute(
                "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on',"
                " has_table_privilege('events', 'INSERT')"
            ).fetchone()
            assert row is not None
            return bool(row[0]), bool(row[1])

        read_only, may_insert = self._run(work)
        if read_only:
            raise DatabaseUnavailable("PostgreSQL is read-only (a standby or default_transaction_read_only)")
        if not may_insert:
            raise DatabaseUnavailable("this database user may not INSERT into events")

    def iter_rows(self, f: EventFilter, chunk_rows: int) -> Iterator[list[EventRow]]:
        """Text columns from a server-side cursor over one snapshot, formatted by the server as SQLite stores them.

        On the read pool: a client that stops reading holds one of its connections, never a writer's, and
        for at most the idle-in-transaction timeout.
        """
        where, params = _where(f)
        sql = f'SELECT {_TEXT_COLUMNS} FROM events{where} ORDER BY "timestamp", event_id'
        self._fail_fast()
        try:
            with (
                self._read_pool.connection() as conn,
                conn.transaction(),
                conn.cursor(name=f"rows_{uuid.uuid4().hex}") as cursor,
            ):
                cursor.itersize = chunk_rows
                cursor.execute(sql, params)
                while rows := cursor.fetchmany(chunk_rows):
                    yield rows  # type: ignore[misc]
        except psycopg.OperationalError as exc:
            raise self._mark_down(exc) from exc

    # -- removal: only through the SECURITY DEFINER functions of the schema ---------------------

    def erase_user(self, user_id: str, *, key_name: str, suppress: bool, at: datetime) -> Erasure:
        def work(conn: Connection) -> int:
            row = conn.execute(
                "SELECT telemetry_erase_user(%s, %s, %s, %s)", (user_id, key_name, suppress, at)
            ).fetchone()
            assert row is not None
            return int(row[0])

        removed = self._run(work) if "\x00" not in user_id else 0  # text cannot hold NUL: no such user
        return Erasure(at.astimezone(UTC), user_digest(user_id), removed, key_name, suppress)

    def erasures(self) -> list[Erasure]:
        sql = "SELECT erased_at, user_id_sha256, events_removed, key_name, suppressed FROM erasures ORDER BY seq"
        rows: list[tuple[Any, ...]] = self._run(lambda conn: conn.execute(sql).fetchall())
        return [Erasure(r[0].astimezone(UTC), r[1], int(r[2]), r[3], bool(r[4])) for r in rows]

    def suppressed_users(self) -> frozenset[str]:
        rows: list[tuple[Any, ...]] = self._run(
            lambda conn: conn.execute("SELECT user_id_sha256 FROM suppressed_users").fetchall()
        )
        return frozenset(r[0] for r in rows)

    def remove_before(self, cutoff: datetime, max_rows: int) -> int:
        def work(conn: Connection) -> int:
            row = conn.execute("SELECT telemetry_remove_before(%s, %s)", (cutoff, max_rows)).fetchone()
            assert row is not None
            return int(row[0])

        return self._run(work)

    def count_before(self, cutoff: datetime) -> int:
        sql = 'SELECT count(*) FROM events WHERE "timestamp" < %s'
        row: tuple[Any, ...] | None = self._run(lambda conn: conn.execute(sql, (cutoff,)).fetchone())
        return int(row[0]) if row else 0

    def oldest_timestamp(self) -> datetime | None:
        sql = 'SELECT min("timestamp") FROM events'
        row: tuple[Any, ...] | None = self._run(lambda conn: conn.execute(sql).fetchone())
        return row[0].astimezone(UTC) if row and row[0] is not None else None

    @contextlib.contextmanager
    def retention_lock(self) -> Iterator[bool]:
        """A session advisory lock held on one pooled connection for the pass: one replica runs it at a time."""
        self._fail_fast()
        try:
            with self._pool.connection() as conn:
                row = conn.execute(_RETENTION_LOCK).fetchone()
                conn.commit()
                held = bool(row and row[0])
                try:
                    yield held
                finally:
                    if held:
                        conn.execute(_RETENTION_UNLOCK)
                        conn.commit()
        except psycopg.OperationalError as exc:
            raise self._mark_down(exc) from exc

    def close(self) -> None:
        self._read_pool.close()
        self._pool.close()


_UTC_TEXT = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
_TEXT_COLUMNS = ", ".join(
    [
        "event_id::text, user_id, action, source",
        _UTC_TEXT.format('"timestamp"'),
        _UTC_TEXT.format("received_at"),
        _UTC_TEXT.format("sent_at"),
        "metadata_text",
    ]
)
# Salted with the schema like the migration lock: each schema (each test, each deployment) has its own.
_RETENTION_LOCK = "SELECT pg_try_advisory_lock(hashtext('telemetry-retention:' || current_schema()))"
_RETENTION_UNLOCK = "SELECT pg_advisory_unlock(hashtext('telemetry-retention:' || current_schema()))"


def _migrate_when_reachable(url: str, connect_timeout_s: float, startup_timeout_s: float) -> None:
    """Migrate at start-up, waiting up to startup_timeout_s for a database that is still starting."""
    deadline = time.monotonic() + startup_timeout_s
    while True:
        try:
            with psycopg.connect(url, connect_timeout=max(1, round(connect_timeout_s))) as conn:
                migrate(conn)
            return
        except psycopg.OperationalError as exc:
            if time.monotonic() >= deadline:
                raise DatabaseUnavailable(f"PostgreSQL unreachable at start-up: {exc}".strip()) from exc
            time.sleep(0.5)
        except psycopg.Error as exc:  # e.g. no right to create the schema: waiting would not help
            raise _storage_error(exc) from exc


def _storage_error(exc: psycopg.Error) -> StorageError:
    return StorageError(f"PostgreSQL: {type(exc).__name__}: {exc}".strip())
