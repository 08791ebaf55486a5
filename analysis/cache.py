"""A columnar copy of the events kept between runs, so that a report reads from the store only what is new.

Events are immutable and seq is the store's insertion order, so a copy holding every row up to seq W stays
true for as long as the store's rows up to W are the same: the next run reads just the rows past W. Rows do
leave the store (erasure, retention), and SQLite may hand out a removed top seq again, so before using the
copy the store is asked for its fingerprint of the rows up to W (how many, the sum of their seqs, and the
event_id at W). Any difference means rows were removed (or a seq arrived late, or was reused): the copy is
thrown away and built again from the whole store. The metadata properties the analyses read back (one
key's values, analysis/properties.py) are kept in the same file under the same rule, and so is the per
user-day rollup (analysis/rollups.py): the days the new rows (or the rows a dead run left past the mark)
fall on are rolled up again from the copy's events of those days; the sessions they can change likewise
(analysis/session_paths.py), and the groups of events sharing user, action, source and time
(analysis/repeats.py).

One DuckDB file per store (named by a digest of its URL), in the user's cache directory
($XDG_CACHE_HOME/telemetry-analysis, else ~/.cache/telemetry-analysis) or one given to `connect`; the
store itself is never written. At most KEEP_STORES files are kept: the least recently used go first. A file
another process holds open is not waited for: that run loads from the store as if there were no cache.
`CacheUse` says what happened, and the report prints it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from analysis import repeats, rollups, session_paths

if TYPE_CHECKING:
    import duckdb  # imported where used: `python -m app report` asks default_directory() without DuckDB

    from analysis.db import Database

# Bumped whenever the cached tables change shape: a file of another format is rebuilt, never read.
FORMAT = 3
# Files kept in the cache directory (one per store analysed); the least recently used beyond it are removed.
KEEP_STORES = 4
CATALOG = "cache"


def default_directory() -> Path:
    """$XDG_CACHE_HOME/telemetry-analysis, else ~/.cache/telemetry-analysis."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "telemetry-analysis"


@dataclass(frozen=True, slots=True)
class CacheUse:
    """How the engine got its events: state is "warm" (the copy was current or only new rows were read),
    "cold" (no copy yet), "rebuilt" (the store had changed under the copy), "unavailable" (the cache file
    could not be used; loaded from the store) or "off" (no cache asked for)."""

    state: str
    path: Path | None = None
    events_read: int = 0  # rows read from the store in this run
    reason: str = ""

    def describe(self) -> str:
        if self.state == "off":
            return "no cache: every event read from the store"
        where = f" ({self.path})" if self.path else ""
        return {
            "warm": f"warm cache{where}: {self.events_read:,} new event(s) read from the store",
            "cold": f"cold cache{where}: built from the store, {self.events_read:,} events read",
            "rebuilt": f"cache rebuilt{where}: {self.reason}; {self.events_read:,} events read",
            "unavailable": f"cache not used{where}: {self.reason}; every event read from the store",
        }[self.state]


def cache_file(directory: Path, db: Database) -> Path:
    return directory / f"events-{hashlib.sha256(db.url.encode()).hexdigest()[:24]}.duckdb"


def _evict(directory: Path, keep: Path) -> None:
    files = sorted(directory.glob("events-*.duckdb"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in [f for f in files if f != keep][KEEP_STORES - 1 :]:
        for leftover in (old, old.with_name(old.name + ".wal")):
            with contextlib.suppress(OSError):  # another process may hold or remove it: next time, then
                leftover.unlink()


_STATE = f"""
    CREATE TABLE IF NOT EXISTS {CATALOG}.state (
        format INTEGER NOT NULL, through BIGINT NOT NULL, rows BIGINT NOT NULL, seq_sum HUGEINT NOT NULL,
        last_event_id VARCHAR)
"""
_PROPERTIES = f"CREATE TABLE IF NOT EXISTS {CATALOG}.properties (name VARCHAR PRIMARY KEY, through BIGINT NOT NULL)"
# Answers asked of the store itself (not of the copy), valid while the store's rows up to `through` are the
# ones the copy holds and none came after.
_ANSWERS = f"""
    CREATE TABLE IF NOT EXISTS {CATALOG}.answers (name VARCHAR PRIMARY KEY, through BIGINT NOT NULL, answer VARCHAR)
"""


def _event_id_at(db: Database, seq: int) -> str | None:
    found = db.store_rows(db.sql.event_id_at, (seq,))
    return str(found[0][0]) if found else None


def _fingerprint(db: Database, through: int) -> tuple[int, int, str | None]:
    """How many rows the store holds up to `through`, the sum of their seqs, and the event_id at it."""
    rows, seq_sum = db.store_rows(db.sql.rows_through, (through,))[0]
    return int(rows), int(seq_sum), _event_id_at(db, through)


def _drop_all(engine: duckdb.DuckDBPyConnection) -> None:
    for (name,) in engine.execute(f"SELECT name FROM {CATALOG}.properties").fetchall():
        engine.execute(f"DROP TABLE IF EXISTS {CATALOG}.{name}")
    engine.execute(f"DROP TABLE IF EXISTS {CATALOG}.events")
    engine.execute(f"DROP TABLE IF EXISTS {CATALOG}.{rollups.TABLE}")
    engine.execute(f"DROP TABLE IF EXISTS {CATALOG}.{session_paths.TABLE}")
    engine.execute(f"DROP TABLE IF EXISTS {CATALOG}.{repeats.TABLE}")
    engine.execute(f"DELETE FROM {CATALOG}.properties")
    engine.execute(f"DELETE FROM {CATALOG}.answers")
    engine.execute(f"DELETE FROM {CATALOG}.state")


def _stale_reason(db: Database, engine: duckdb.DuckDBPyConnection) -> str | None:
    """None when the copy matches the store up to its last seq, else what differs."""
    state = engine.execute(f"SELECT format, through, rows, seq_sum, last_event_id FROM {CATALOG}.state").fetchone()
    if state is None:
        return "no copy yet"
    format_, through, rows, seq_sum, last_event_id = state
    if format_ != FORMAT:
        return "the cache was written by another version"
    if (rows, seq_sum, last_event_id) != _fingerprint(db, int(through)):
        return "events were removed from the store (erasure or retention) or arrived out of order"
    return None


def _attach(engine: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Attach the cache file; one that is not a readable DuckDB file of this version (a crash mid-write, a
    DuckDB upgrade) is only a copy: it is removed and started again. A file another run holds stays."""
    import duckdb

    try:
        engine.execute(f"ATTACH ? AS {CATALOG}", [str(path)])
    except duckdb.Error as exc:
        if "lock" in str(exc).lower():
            raise
        for leftover in (path, path.with_name(path.name + ".wal")):
            leftover.unlink(missing_ok=True)
        engine.execute(f"ATTACH ? AS {CATALOG}", [str(path)])


def open_engine(db: Database, directory: Path, spill_directory: str) -> tuple[duckdb.DuckDBPyConnection, int, CacheUse]:
    """An engine whose `events` view reads the cached copy, brought up to date with the store first; the
    last seq it holds; how the cache was used. Falls back to a plain load when the file cannot be used."""
    import duckdb

    from analysis.load import create_events_table, load_events, new_engine, read_events, store_bounds

    path = cache_file(directory, db)
    engine = new_engine(spill_directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _attach(engine, path)
    except (OSError, duckdb.Error) as exc:  # locked by another run, a full disk...
        engine.close()
        loaded, last = load_events(db, spill_directory)
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        counted = loaded.execute("SELECT COUNT(*) FROM events").fetchone()
        return loaded, last, CacheUse("unavailable", path, int(counted[0]) if counted else 0, why)
    try:
        engine.execute(_STATE)
        engine.execute(_PROPERTIES)
        engine.execute(_ANSWERS)
        reason = _stale_reason(db, engine)
        state = "warm"
        events, rolled, sessions = f"{CATALOG}.events", f"{CATALOG}.{rollups.TABLE}", f"{CATALOG}.{session_paths.TABLE}"
        repeated = f"{CATALOG}.{repeats.TABLE}"
        if reason is not None:
            state = "cold" if reason == "no copy yet" else "rebuilt"
            _drop_all(engine)
            create_events_table(engine, events)
            rollups.create_table(engine, rolled)
            session_paths.create_table(engine, sessions)
            repeats.create_table(engine, repeated)
            through = 0
            left_behind: list[datetime] = []
        else:
            mark = engine.execute(f"SELECT through FROM {CATALOG}.state").fetchone()
            through = int(mark[0]) if mark else 0
            # rows a run that died mid-append left past its recorded mark (its rollup may count them)
            left_behind = rollups.days_of(engine, events, through)
            session_paths.touched(engine, events, through)
            repeats.touched(engine, events, through)
            engine.execute(f"DELETE FROM {events} WHERE seq > ?", [through])
        first, last = store_bounds(db)
        read_events(db, engine, events, max(first, through + 1), last)
        if through == 0:
            engine.execute(f"DELETE FROM {rolled}")
            rollups.fill(engine, rolled, events)
            engine.execute(f"DELETE FROM {sessions}")
            session_paths.fill(engine, sessions, events)
            engine.execute(f"DELETE FROM {repeated}")
            repeats.fill(engine, repeated, events)
        else:
            touched = sorted({*left_behind, *rollups.days_of(engine, events, through)})
            rollups.refresh_days(engine, rolled, events, touched)
            session_paths.touched(engine, events, through)
            session_paths.refresh_touched(engine, sessions, events)
            repeats.touched(engine, events, through)
            repeats.refresh_touched(engine, repeated, events)
        rows, seq_sum, top, read = engine.execute(
            f"SELECT COUNT(*), COALESCE(SUM(seq), 0), COALESCE(MAX(seq), 0), COUNT(*) FILTER (WHERE seq > ?)"
            f" FROM {CATALOG}.events",
            [through],
        ).fetchone()  # type: ignore[misc]
        # Only the event_id at the new mark: the count and seq sum are the copy's own, just computed (asking
        # the store again would scan every row up to the mark a second time).
        last_event_id = _event_id_at(db, int(top))
        engine.execute(f"DELETE FROM {CATALOG}.state")
        engine.execute(
            f"INSERT INTO {CATALOG}.state VALUES (?, ?, ?, ?, ?)", [FORMAT, int(top), rows, seq_sum, last_event_id]
        )
        engine.execute(f"CHECKPOINT {CATALOG}")
        engine.execute(f"CREATE VIEW events AS SELECT * FROM {events}")
        engine.execute(f"CREATE VIEW {rollups.TABLE} AS SELECT * FROM {rolled}")
        engine.execute(f"CREATE VIEW {session_paths.TABLE} AS SELECT * FROM {sessions}")
        engine.execute(f"CREATE VIEW {repeats.TABLE} AS SELECT * FROM {repeated}")
    except BaseException:
        engine.close()
        raise
    os.utime(path)  # the eviction's "recently used"
    _evict(directory, path)
    return engine, int(top), CacheUse(state, path, read, reason or "")


def cached_property_through(engine: duckdb.DuckDBPyConnection, name: str) -> int | None:
    """The last seq cached property table `name` holds, or None when it is not cached yet."""
    row = engine.execute(f"SELECT through FROM {CATALOG}.properties WHERE name = ?", [name]).fetchone()
    return None if row is None else int(row[0])


def property_cached(engine: duckdb.DuckDBPyConnection, name: str, through: int) -> None:
    engine.execute(f"INSERT OR REPLACE INTO {CATALOG}.properties VALUES (?, ?)", [name, through])


def remembered_answer(engine: duckdb.DuckDBPyConnection, name: str, through: int) -> str | None:
    """The JSON answer kept under `name` for a store whose rows end at `through`, if one is kept."""
    query = f"SELECT answer FROM {CATALOG}.answers WHERE name = ? AND through = ?"
    row = engine.execute(query, [name, through]).fetchone()
    return None if row is None else str(row[0])


def remember_answer(engine: duckdb.DuckDBPyConnection, name: str, through: int, answer: str) -> None:
    engine.execute(f"INSERT OR REPLACE INTO {CATALOG}.answers VALUES (?, ?, ?)", [name, through, answer])
    engine.execute(f"CHECKPOINT {CATALOG}")
