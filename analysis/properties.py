"""Metadata read back from the store on demand: one key's values for every event, or the metadata of
chosen rows. The engine's events table leaves metadata text out (it is most of a row's bytes)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from analysis.db import Database


def json_path(key: str) -> str:
    """A JSON path to one top-level key, quoted so keys with dots or spaces work."""
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def metadata_table(db: Database, seqs: Iterable[int], table: str) -> None:
    """Build engine table `table` (seq, metadata) holding the metadata text of the given rows, read from
    the store as Arrow batches."""
    from analysis.load import store_batches

    wanted = json.dumps(sorted({int(s) for s in seqs}))
    engine = db.engine().cursor()
    try:
        with store_batches(db, db.sql.metadata_of, (wanted,)) as found:
            engine.register("found", found)
            engine.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT seq::BIGINT AS seq, metadata FROM found")
            engine.unregister("found")
    finally:
        engine.close()


def metadata_rows(db: Database, seqs: Iterable[int]) -> pd.DataFrame:
    """seq, metadata (JSON text) of the given rows, read from the store."""
    metadata_table(db, seqs, "metadata_rows")
    return db.frame("SELECT seq, metadata FROM metadata_rows ORDER BY seq")


# Keys that name the unit of an event's numbers: kept beside every property value, so that sums and
# summaries never add EUR to USD.
UNIT_KEYS = ("currency", "unit")


def load_property(db: Database, key: str, table: str) -> None:
    """Make engine table (or view) `table` (seq, value, type, unit): key's value in every event whose
    metadata holds it, and the event's currency or unit (NULL when it names none). With a cache, the rows
    are kept there and only events past the cached mark are searched."""
    from analysis.load import store_bounds

    engine = db.engine()
    first, last = store_bounds(db)[0], db.through
    if not db.cached:
        engine.execute(f"CREATE TABLE {table} (seq BIGINT, value VARCHAR, type VARCHAR, unit VARCHAR)")
        _read_property(db, key, table, first, last)
        return
    from analysis.cache import CATALOG, cached_property_through, property_cached

    kept = f"{CATALOG}.{table}"
    through = cached_property_through(engine, table)
    if through is None:
        engine.execute(f"CREATE OR REPLACE TABLE {kept} (seq BIGINT, value VARCHAR, type VARCHAR, unit VARCHAR)")
        through = 0
    else:
        engine.execute(f"DELETE FROM {kept} WHERE seq > ?", [through])  # a run that died mid-append
    _read_property(db, key, kept, max(first, through + 1), last)
    property_cached(engine, table, max(last, through))
    engine.execute(f"CHECKPOINT {CATALOG}")
    engine.execute(f"CREATE VIEW {table} AS SELECT * FROM {kept}")


def _read_property(db: Database, key: str, table: str, first: int, last: int) -> None:
    """Append key's rows among first <= seq <= last to `table`."""
    needle = json.dumps(key)  # the key as it appears quoted in the JSON text (a superset: values match too)
    from analysis.load import CHUNK_ROWS, store_batches

    units = "coalesce(" + ", ".join("json_extract_string(metadata, ?)" for _ in UNIT_KEYS) + ")"
    paths = [json_path(key)] * 2 + [json_path(u) for u in UNIT_KEYS] + [json_path(key)]
    if first <= 0 or last < first:
        return
    engine = db.engine().cursor()
    try:
        # Seq ranges one after the other: a key present in every event would otherwise come back as one
        # result the PostgreSQL driver holds whole (all the metadata text at once).
        for low in range(first, last + 1, CHUNK_ROWS):
            high = min(low + CHUNK_ROWS, last + 1)
            with store_batches(db, db.sql.metadata_naming, (low, high, needle)) as found:
                engine.register("found", found)
                engine.execute(
                    f"""INSERT INTO {table}
                        SELECT seq, json_extract_string(metadata, ?), json_type(metadata, ?), {units}
                        FROM found WHERE json_type(metadata, ?) IS NOT NULL""",
                    paths,
                )
                engine.unregister("found")
    finally:
        engine.close()
