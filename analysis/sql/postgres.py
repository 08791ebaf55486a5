"""SQL run on the PostgreSQL store. metadata_text is the object as the client sent it (jsonb would reorder
keys and respell numbers), so the engine reads the very text SQLite holds; timestamps leave as naive UTC."""

from __future__ import annotations

from analysis.sql.store import StoreQueries

QUERIES = StoreQueries(
    engine_time="{column}",
    # Two subqueries: each is an index end look-up, where MIN and MAX side by side scan the table.
    seq_bounds="""
        SELECT COALESCE((SELECT MIN(seq) FROM events), 0) AS first, COALESCE((SELECT MAX(seq) FROM events), 0) AS last
    """,
    events_between="""
        SELECT seq, user_id, action, source, "timestamp" AT TIME ZONE 'UTC' AS "timestamp",
               received_at AT TIME ZONE 'UTC' AS received_at, (sent_at IS NULL)::int AS no_sent_at,
               metadata_text AS metadata
        FROM events WHERE seq >= $1 AND seq < $2
    """,
    metadata_of="""
        SELECT seq, metadata_text AS metadata FROM events
        WHERE seq = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)::bigint)) ORDER BY seq
    """,
    metadata_naming="""
        SELECT seq, metadata_text AS metadata FROM events WHERE seq >= $1 AND seq < $2 AND strpos(metadata_text, $3) > 0
    """,
    rows_through="SELECT COUNT(*), COALESCE(SUM(seq), 0) FROM events WHERE seq <= %s",
    event_id_at="SELECT event_id::text FROM events WHERE seq = %s",
    duplicate_event_ids="""
        SELECT COUNT(*) AS ids, COALESCE(SUM(n - 1), 0)::bigint AS extra_rows
        FROM (SELECT COUNT(*) AS n FROM events GROUP BY event_id HAVING COUNT(*) > 1) AS repeated
    """,
)
