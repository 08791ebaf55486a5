"""SQL run on the SQLite store. Timestamps are fixed-width UTC text, parsed by the engine, not here."""

from __future__ import annotations

from analysis.sql.store import StoreQueries

QUERIES = StoreQueries(
    engine_time="strptime({column}, '%Y-%m-%dT%H:%M:%S.%fZ')",
    # Two subqueries: each is an index end look-up, where MIN and MAX side by side scan the table.
    seq_bounds="""
        SELECT COALESCE((SELECT MIN(seq) FROM events), 0) AS first, COALESCE((SELECT MAX(seq) FROM events), 0) AS last
    """,
    events_between="""
        SELECT seq, user_id, action, source, timestamp, received_at, sent_at IS NULL AS no_sent_at, metadata
        FROM events WHERE seq >= ? AND seq < ?
    """,
    metadata_of="SELECT seq, metadata FROM events WHERE seq IN (SELECT value FROM json_each(?)) ORDER BY seq",
    # instr() is a byte search, far cheaper than parsing JSON; the engine parses what it finds.
    metadata_naming="SELECT seq, metadata FROM events WHERE seq >= ? AND seq < ? AND instr(metadata, ?) > 0",
    # `+seq`: no rowid range, so SQLite counts along its smallest index (every index holds the rowid; the
    # event_id one is a fifth of the table's pages) instead of the table with its metadata text.
    rows_through="SELECT COUNT(*), COALESCE(SUM(seq), 0) FROM events WHERE +seq <= ?",
    event_id_at="SELECT event_id FROM events WHERE seq = ?",
    duplicate_event_ids="""
        SELECT COUNT(*) AS ids, COALESCE(SUM(n - 1), 0) AS extra_rows
        FROM (SELECT COUNT(*) AS n FROM events GROUP BY event_id HAVING COUNT(*) > 1)
    """,
)
