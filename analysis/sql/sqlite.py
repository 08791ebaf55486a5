"""Every SQL text the analysis runs against SQLite (3.38+ for JSON and window functions).

Timestamps are fixed-width UTC text 'YYYY-MM-DDTHH:MM:SS.ffffffZ', so substr() gives the day or hour bucket
without parsing a date per row, and text order is time order. Values always travel as named parameters.
"""

from __future__ import annotations

from analysis.sql.queries import Queries

# A uniform sample for the metadata queries (JSON parsing is their cost): every :stride-th row by seq, the
# insertion order, fetched by primary key, so the cost follows the sample size, not the table size.
_SAMPLE = """
    WITH RECURSIVE picks(seq) AS (
        SELECT :first UNION ALL SELECT seq + :stride FROM picks WHERE seq + :stride <= :last),
    sample AS (SELECT e.action, e.metadata FROM picks JOIN events e ON e.seq = picks.seq)
"""

# `LIMIT -1` in a subquery stops SQLite from flattening it into the outer query, which would copy the
# subquery's expression (a JSON parse, a date computation) into every place the outer query names it.

# Numeric values of one metadata key for one action in the sample; one JSON parse a row.
_NUMERIC_VALUES = """
    SELECT v FROM (SELECT json_extract(metadata, :path) AS v FROM sample WHERE action = :action LIMIT -1)
    WHERE typeof(v) IN ('integer', 'real')
"""

# Distinct (user, day) pairs: small (users x days) whatever the number of events.
_USER_DAYS = "SELECT DISTINCT user_id, substr(timestamp, 1, 10) AS day FROM events"


def _funnel(steps: int) -> str:
    """Each step counts the users who did it at or after the moment they did the step before."""
    parts = ["s0 AS (SELECT user_id, MIN(timestamp) AS t FROM events WHERE action = :step0 GROUP BY user_id)"]
    for i in range(1, steps):
        parts.append(
            f"s{i} AS (SELECT e.user_id, MIN(e.timestamp) AS t FROM events e "
            f"JOIN s{i - 1} p ON e.user_id = p.user_id AND e.timestamp >= p.t "
            f"WHERE e.action = :step{i} GROUP BY e.user_id)"
        )
    counts = " UNION ALL ".join(f"SELECT {i} AS step, COUNT(*) AS users FROM s{i}" for i in range(steps))
    return f"WITH {', '.join(parts)} {counts} ORDER BY step"


QUERIES = Queries(
    # Separate subqueries, so each uses its own index (counts, distinct users and actions, time bounds).
    overview="""
        SELECT (SELECT COUNT(*) FROM events) AS events,
               (SELECT COUNT(DISTINCT user_id) FROM events) AS users,
               (SELECT COUNT(DISTINCT action) FROM events) AS actions,
               (SELECT COUNT(DISTINCT source) FROM events) AS sources,
               (SELECT MIN(timestamp) FROM events) AS first_timestamp,
               (SELECT MAX(timestamp) FROM events) AS last_timestamp,
               (SELECT MIN(received_at) FROM events) AS first_received_at,
               (SELECT MAX(received_at) FROM events) AS last_received_at
    """,
    sample_bounds="SELECT MIN(seq) AS first, MAX(seq) AS last FROM events",
    duplicate_event_ids="""
        SELECT COUNT(*) AS ids, COALESCE(SUM(n - 1), 0) AS extra_rows
        FROM (SELECT COUNT(*) AS n FROM events GROUP BY event_id HAVING COUNT(*) > 1)
    """,
    # Candidates first: (user, timestamp) pairs seen twice, found from the (user_id, timestamp) index alone.
    probable_retries="""
        WITH candidates AS (SELECT user_id, timestamp FROM events GROUP BY user_id, timestamp HAVING COUNT(*) > 1)
        SELECT COUNT(*) AS groups, COALESCE(SUM(n - 1), 0) AS extra_copies
        FROM (SELECT COUNT(*) AS n FROM candidates c
              JOIN events e ON e.user_id = c.user_id AND e.timestamp = c.timestamp
              GROUP BY e.user_id, e.timestamp, e.action, e.source, e.metadata HAVING COUNT(*) > 1)
    """,
    # Bucket 0: negative (client clock ahead), 1: < 1 s, 2: < 1 min, 3: < 1 h, 4: < 1 day, 5: later.
    delivery_delay="""
        SELECT (d >= 0) + (d >= 1) + (d >= 60) + (d >= 3600) + (d >= 86400) AS bucket,
               COUNT(*) AS events, MIN(d) AS min_seconds, MAX(d) AS max_seconds, AVG(d) AS mean_seconds
        FROM (SELECT (julianday(received_at) - julianday(timestamp)) * 86400.0 AS d FROM events LIMIT -1)
        GROUP BY bucket
    """,
    missing_values="""
        SELECT SUM(event_id IS NULL OR event_id = '') AS event_id,
               SUM(user_id IS NULL OR user_id = '') AS user_id,
               SUM(action IS NULL OR action = '') AS action,
               SUM(source IS NULL OR source = '') AS source,
               SUM(timestamp IS NULL) AS timestamp,
               SUM(received_at IS NULL) AS received_at,
               SUM(sent_at IS NULL) AS sent_at,
               SUM(metadata IS NULL OR metadata = '{}') AS metadata
        FROM events
    """,
    action_counts="""
        SELECT action, COUNT(*) AS events, COUNT(DISTINCT user_id) AS users
        FROM events GROUP BY action ORDER BY events DESC, action
    """,
    actions_by_source="SELECT action, source, COUNT(*) AS events FROM events GROUP BY action, source",
    daily_active_users=f"SELECT day, COUNT(*) AS users FROM ({_USER_DAYS}) GROUP BY day ORDER BY day",
    weekly_active_users=f"""
        SELECT date(day, 'weekday 0', '-6 days') AS week, COUNT(DISTINCT user_id) AS users
        FROM ({_USER_DAYS}) GROUP BY week ORDER BY week
    """,
    events_per_user="SELECT user_id, COUNT(*) AS events FROM events GROUP BY user_id",
    hourly_events="""
        SELECT substr(timestamp, 1, 13) AS hour, COUNT(*) AS events FROM events GROUP BY hour ORDER BY hour
    """,
    sample_actions=f"{_SAMPLE} SELECT action, COUNT(*) AS events FROM sample GROUP BY action",
    metadata_values=f"""{_SAMPLE}
        SELECT s.action, j.key, j.type, j.atom AS value, COUNT(*) AS events
        FROM sample s, json_each(s.metadata) j GROUP BY s.action, j.key, j.type, j.atom
    """,
    top_values=f"""{_SAMPLE}
        SELECT value, type, COUNT(*) AS events, SUM(COUNT(*)) OVER () AS present
        FROM (SELECT json_extract(metadata, :path) AS value, json_type(metadata, :path) AS type
              FROM sample WHERE action = :action LIMIT -1)
        WHERE type IS NOT NULL
        GROUP BY value, type ORDER BY events DESC, value LIMIT :top
    """,
    numeric_summary=f"""{_SAMPLE}
        SELECT COUNT(v) AS count, MIN(v) AS minimum, MAX(v) AS maximum, AVG(v) AS mean, AVG(v * v) AS mean_square
        FROM ({_NUMERIC_VALUES})
    """,
    numeric_quantiles=f"""{_SAMPLE}
        SELECT position, v AS value
        FROM (SELECT v, ROW_NUMBER() OVER (ORDER BY v) - 1 AS position FROM ({_NUMERIC_VALUES}))
        WHERE position IN (SELECT value FROM json_each(:positions)) ORDER BY position
    """,
    numeric_histogram=f"""{_SAMPLE}
        SELECT MIN(CAST((v - :low) / :width AS INTEGER), :bins - 1) AS bin, COUNT(*) AS events
        FROM ({_NUMERIC_VALUES}) GROUP BY bin ORDER BY bin
    """,
    funnel=_funnel,
    retention_cohorts=f"""
        WITH user_weeks AS (
                 SELECT DISTINCT user_id, date(day, 'weekday 0', '-6 days') AS week FROM ({_USER_DAYS})),
             cohorts AS (SELECT user_id, MIN(week) AS cohort FROM user_weeks GROUP BY user_id)
        SELECT c.cohort, CAST(round(julianday(w.week) - julianday(c.cohort)) AS INTEGER) / 7 AS week_offset,
               COUNT(*) AS users
        FROM user_weeks w JOIN cohorts c ON c.user_id = w.user_id
        GROUP BY c.cohort, week_offset ORDER BY c.cohort, week_offset
    """,
)
