"""Opening the PostgreSQL store read-only (psycopg for look-ups; the bulk read goes through ADBC)."""

from __future__ import annotations

from analysis.db import Database, DatabaseNotFound
from analysis.sql import postgres as postgres_sql


def open_postgres(url: str) -> Database:
    """A read-only `analysis.db.Database` on the service's PostgreSQL database (the URL the service uses)."""
    import psycopg  # imported here: reading SQLite needs no PostgreSQL driver

    connection = psycopg.connect(url, autocommit=True)
    # Read-only for the whole session: the analysis cannot write, whatever a query says.
    connection.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    found = connection.execute("SELECT to_regclass('events') IS NOT NULL").fetchone()
    if not (found and found[0]):
        connection.close()
        raise DatabaseNotFound(f"no events table in the PostgreSQL database at {url} (has the service run?)")
    return Database(connection, postgres_sql.QUERIES, url, url, "postgresql")
