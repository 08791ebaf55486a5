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


def metadata_rows(db: Database, seqs: Iterable[int]) -> pd.DataFrame:
    """seq, metadata (JSON text) of the given rows, read from the store."""
    wanted = json.dumps(sorted({int(s) for s in seqs}))
    rows = db.store_rows(db.sql.metadata_of, (wanted,))
    return pd.DataFrame.from_records(rows, columns=["seq", "metadata"]).astype({"seq": "int64", "metadata": "str"})


def load_property(db: Database, key: str, table: str) -> None:
    """Build engine table `table` (seq, value, type): key's value in every event whose metadata holds it."""
    needle = json.dumps(key)  # the key as it appears quoted in the JSON text (a superset: values match too)
    from analysis.load import store_batches

    engine = db.engine().cursor()
    try:
        with store_batches(db, db.sql.metadata_naming, (needle,)) as found:
            engine.register("found", found)
            engine.execute(
                f"""CREATE TABLE {table} AS
                    SELECT seq, json_extract_string(metadata, ?) AS value, json_type(metadata, ?) AS type
                    FROM found WHERE json_type(metadata, ?) IS NOT NULL""",
                [json_path(key)] * 3,
            )
            engine.unregister("found")
    finally:
        engine.close()
