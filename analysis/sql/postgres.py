"""Every SQL text the analysis runs against PostgreSQL (the service's schema: app/database/postgres.py).

The same queries as analysis/sql/sqlite.py, giving the same columns with the same Python values: times,
days, hours and weeks as the same fixed-width UTC text; averages as float, counts as int; JSON values as
SQLite gives them (a string as str, a number as int or float, true/false as 1/0, an array or object as
its JSON text) and JSON types under SQLite's names ('text', 'integer', 'real', 'true', 'false', 'null',
'array', 'object'). Metadata is read from the jsonb column. Values travel as psycopg's %(name)s
parameters, so no literal percent sign may appear here.
"""

from __future__ import annotations

from analysis.db import Database, DatabaseNotFound
from analysis.sql.queries import Queries

_UTC_TEXT = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'


def _utc_text(expression: str) -> str:
    return f"to_char({expression} AT TIME ZONE 'UTC', '{_UTC_TEXT}')"


def _sqlite_type(value: str) -> str:
    """SQLite's json_type() name for a jsonb value."""
    return (
        f"CASE jsonb_typeof({value}) WHEN 'string' THEN 'text' WHEN 'boolean' THEN {value}::text"
        f" WHEN 'number' THEN CASE WHEN {value}::text ~ '^-?[0-9]+$' THEN 'integer' ELSE 'real' END"
        f" ELSE jsonb_typeof({value}) END"
    )


def _sqlite_value(value: str, containers: str) -> str:
    """SQLite's SQL value of a JSON value, as jsonb (psycopg reads it back as str, int or float)."""
    return (
        f"CASE jsonb_typeof({value}) WHEN 'boolean' THEN to_jsonb({value}::boolean::int)"
        f" WHEN 'null' THEN NULL WHEN 'array' THEN {containers} WHEN 'object' THEN {containers}"
        f" ELSE {value} END"
    )


# A uniform sample for the metadata queries: every %(stride)s-th row by seq (the insertion order), fetched
# through the unique index on seq, so the cost follows the sample size, not the table size.
_SAMPLE = """
    WITH sample AS (
        SELECT e.action, e.metadata
        FROM generate_series(%(first)s::bigint, %(last)s::bigint, %(stride)s::bigint) AS picks(seq)
        JOIN events e ON e.seq = picks.seq)
"""

# The value at :path of one event's metadata (NULL when the key is absent).
_AT_PATH = "jsonb_path_query_first(metadata, %(path)s::jsonpath)"

# Numeric values of one metadata key for one action in the sample, as jsonb numbers.
_NUMERIC_VALUES = f"""
    SELECT v FROM (SELECT {_AT_PATH} AS v FROM sample WHERE action = %(action)s) AS values_at_path
    WHERE jsonb_typeof(v) = 'number'
"""

# Distinct (user, UTC day) pairs: small (users x days) whatever the number of events.
_USER_DAYS = "SELECT DISTINCT user_id, (timestamp AT TIME ZONE 'UTC')::date AS day FROM events"


def _funnel(steps: int) -> str:
    """Each step counts the users who did it at or after the moment they did the step before."""
    parts = ["s0 AS (SELECT user_id, MIN(timestamp) AS t FROM events WHERE action = %(step0)s GROUP BY user_id)"]
    for i in range(1, steps):
        parts.append(
            f"s{i} AS (SELECT e.user_id, MIN(e.timestamp) AS t FROM events e "
            f"JOIN s{i - 1} p ON e.user_id = p.user_id AND e.timestamp >= p.t "
            f"WHERE e.action = %(step{i})s GROUP BY e.user_id)"
        )
    counts = " UNION ALL ".join(f"SELECT {i} AS step, COUNT(*) AS users FROM s{i}" for i in range(steps))
    return f"WITH {', '.join(parts)} {counts} ORDER BY step"


QUERIES = Queries(
    overview=f"""
        SELECT (SELECT COUNT(*) FROM events) AS events,
               (SELECT COUNT(DISTINCT user_id) FROM events) AS users,
               (SELECT COUNT(DISTINCT action) FROM events) AS actions,
               (SELECT COUNT(DISTINCT source) FROM events) AS sources,
               (SELECT {_utc_text("MIN(timestamp)")} FROM events) AS first_timestamp,
               (SELECT {_utc_text("MAX(timestamp)")} FROM events) AS last_timestamp,
               (SELECT {_utc_text("MIN(received_at)")} FROM events) AS first_received_at,
               (SELECT {_utc_text("MAX(received_at)")} FROM events) AS last_received_at
    """,
    sample_bounds="SELECT MIN(seq) AS first, MAX(seq) AS last FROM events",
    duplicate_event_ids="""
        SELECT COUNT(*) AS ids, COALESCE(SUM(n - 1), 0)::bigint AS extra_rows
        FROM (SELECT COUNT(*) AS n FROM events GROUP BY event_id HAVING COUNT(*) > 1) AS repeated
    """,
    probable_retries="""
        WITH candidates AS (SELECT user_id, timestamp FROM events GROUP BY user_id, timestamp HAVING COUNT(*) > 1)
        SELECT COUNT(*) AS groups, COALESCE(SUM(n - 1), 0)::bigint AS extra_copies
        FROM (SELECT COUNT(*) AS n FROM candidates c
              JOIN events e ON e.user_id = c.user_id AND e.timestamp = c.timestamp
              GROUP BY e.user_id, e.timestamp, e.action, e.source, e.metadata HAVING COUNT(*) > 1) AS repeated
    """,
    # Bucket 0: negative (client clock ahead), 1: < 1 s, 2: < 1 min, 3: < 1 h, 4: < 1 day, 5: later.
    # Exact to the microsecond (SQLite's julianday() resolves milliseconds).
    delivery_delay="""
        SELECT (d >= 0)::int + (d >= 1)::int + (d >= 60)::int + (d >= 3600)::int + (d >= 86400)::int AS bucket,
               COUNT(*) AS events, MIN(d) AS min_seconds, MAX(d) AS max_seconds, AVG(d) AS mean_seconds
        FROM (SELECT EXTRACT(EPOCH FROM received_at - timestamp)::float8 AS d FROM events) AS delays
        GROUP BY 1
    """,
    missing_values="""
        SELECT COUNT(*) FILTER (WHERE event_id IS NULL) AS event_id,
               COUNT(*) FILTER (WHERE user_id IS NULL OR user_id = '') AS user_id,
               COUNT(*) FILTER (WHERE action IS NULL OR action = '') AS action,
               COUNT(*) FILTER (WHERE source IS NULL OR source = '') AS source,
               COUNT(*) FILTER (WHERE timestamp IS NULL) AS timestamp,
               COUNT(*) FILTER (WHERE received_at IS NULL) AS received_at,
               COUNT(*) FILTER (WHERE sent_at IS NULL) AS sent_at,
               COUNT(*) FILTER (WHERE metadata IS NULL OR metadata = '{}'::jsonb) AS metadata
        FROM events
    """,
    action_counts="""
        SELECT action, COUNT(*) AS events, COUNT(DISTINCT user_id) AS users
        FROM events GROUP BY action ORDER BY events DESC, action
    """,
    actions_by_source="SELECT action, source, COUNT(*) AS events FROM events GROUP BY action, source",
    daily_active_users=f"""
        SELECT to_char(day, 'YYYY-MM-DD') AS day, COUNT(*) AS users
        FROM ({_USER_DAYS}) AS user_days GROUP BY user_days.day ORDER BY user_days.day
    """,
    weekly_active_users=f"""
        SELECT to_char(date_trunc('week', day), 'YYYY-MM-DD') AS week, COUNT(DISTINCT user_id) AS users
        FROM ({_USER_DAYS}) AS user_days GROUP BY 1 ORDER BY 1
    """,
    events_per_user="SELECT user_id, COUNT(*) AS events FROM events GROUP BY user_id",
    hourly_events="""
        SELECT to_char(timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24') AS hour, COUNT(*) AS events
        FROM events GROUP BY 1 ORDER BY 1
    """,
    sample_actions=f"{_SAMPLE} SELECT action, COUNT(*) AS events FROM sample GROUP BY action",
    metadata_values=f"""{_SAMPLE}
        SELECT s.action, j.key, {_sqlite_type("j.value")} AS type, {_sqlite_value("j.value", "NULL")} AS value,
               COUNT(*) AS events
        FROM sample s, jsonb_each(s.metadata) AS j(key, value) GROUP BY 1, 2, 3, 4
    """,
    top_values=f"""{_SAMPLE}
        SELECT {_sqlite_value("v", "to_jsonb(v::text)")} AS value, {_sqlite_type("v")} AS type, COUNT(*) AS events,
               (SUM(COUNT(*)) OVER ())::bigint AS present
        FROM (SELECT {_AT_PATH} AS v FROM sample WHERE action = %(action)s) AS values_at_path
        WHERE v IS NOT NULL
        GROUP BY 1, 2 ORDER BY events DESC, 1 LIMIT %(top)s
    """,
    # to_jsonb(numeric) reads back as int when whole, float otherwise: integer keys keep integer bounds.
    numeric_summary=f"""{_SAMPLE}
        SELECT COUNT(v) AS count, to_jsonb(MIN(v::numeric)) AS minimum, to_jsonb(MAX(v::numeric)) AS maximum,
               AVG(v::float8) AS mean, AVG(v::float8 * v::float8) AS mean_square
        FROM ({_NUMERIC_VALUES}) AS numbers
    """,
    numeric_quantiles=f"""{_SAMPLE}
        SELECT position, v AS value
        FROM (SELECT v, ROW_NUMBER() OVER (ORDER BY v::numeric) - 1 AS position
              FROM ({_NUMERIC_VALUES}) AS numbers) AS ranked
        WHERE position IN (SELECT jsonb_array_elements_text(%(positions)s::jsonb)::bigint) ORDER BY position
    """,
    numeric_histogram=f"""{_SAMPLE}
        SELECT LEAST(trunc((v::float8 - %(low)s) / %(width)s)::int, %(bins)s - 1) AS bin, COUNT(*) AS events
        FROM ({_NUMERIC_VALUES}) AS numbers GROUP BY 1 ORDER BY 1
    """,
    funnel=_funnel,
    retention_cohorts=f"""
        WITH user_weeks AS (
                 SELECT DISTINCT user_id, date_trunc('week', day)::date AS week FROM ({_USER_DAYS}) AS user_days),
             cohorts AS (SELECT user_id, MIN(week) AS cohort FROM user_weeks GROUP BY user_id)
        SELECT to_char(c.cohort, 'YYYY-MM-DD') AS cohort, (w.week - c.cohort) / 7 AS week_offset,
               COUNT(*) AS users
        FROM user_weeks w JOIN cohorts c ON c.user_id = w.user_id
        GROUP BY c.cohort, 2 ORDER BY c.cohort, 2
    """,
)


def open_postgres(url: str) -> Database:
    """A read-only `analysis.db.Database` on the service's PostgreSQL database (the URL the service uses).

    analysis.db.connect hands postgresql:// and postgres:// URLs here.
    """
    import psycopg  # imported here: reading SQLite needs no PostgreSQL driver

    connection = psycopg.connect(url, autocommit=True)
    # Read-only for the whole session: the analysis cannot write, whatever a query says.
    connection.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    found = connection.execute("SELECT to_regclass('events') IS NOT NULL").fetchone()
    if not (found and found[0]):
        connection.close()
        raise DatabaseNotFound(f"no events table in the PostgreSQL database at {url} (has the service run?)")
    return Database(connection, QUERIES, url)
