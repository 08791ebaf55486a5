"""`python -m app simulate` as a user runs it: a real process writing a real SQLite file."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _simulate(*args: str, live: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    if live is not None:
        env["TELEMETRY_DATABASE_URL"] = live
    return subprocess.run(
        [sys.executable, "-m", "app", "simulate", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_simulate_writes_the_events_and_shows_progress_and_a_summary(tmp_path: Path) -> None:
    db = tmp_path / "sim.db"
    done = _simulate(
        "--events", "5000", "--users", "100", "--days", "7", "--seed", "5", "--database-url", f"sqlite:///{db}"
    )
    assert done.returncode == 0, done.stderr
    assert "simulate" in done.stderr
    assert "100%" in done.stderr
    assert "5000 events" in done.stderr
    assert "accepted 5000" in done.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT user_id) FROM events").fetchone() == (5000, 100)


def test_simulating_twice_with_one_seed_stores_each_event_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sim.db'}"
    args = ("--events", "2000", "--users", "50", "--days", "7", "--quiet", "--database-url", url)
    assert _simulate(*args).returncode == 0
    again = _simulate(*args)
    assert again.returncode == 0
    assert "duplicate 2000" in again.stderr  # the same ids: the store recognises the same facts


def test_impossible_parameters_fail_with_a_message(tmp_path: Path) -> None:
    done = _simulate("--events", "10", "--users", "500", "--database-url", f"sqlite:///{tmp_path / 'x.db'}")
    assert done.returncode == 2
    assert "cannot hold" in done.stderr
    assert "Traceback" not in done.stderr


def test_parallel_workers_store_exactly_the_single_process_stream(tmp_path: Path) -> None:
    stored = []
    for workers in ("1", "2"):
        db = tmp_path / f"w{workers}.db"
        done = _simulate("--events", "4000", "--users", "80", "--days", "7", "--seed", "6", "--quiet",
                         "--workers", workers, "--database-url", f"sqlite:///{db}")  # fmt: skip
        assert done.returncode == 0, done.stderr
        with sqlite3.connect(db) as conn:
            stored.append(set(conn.execute("SELECT event_id, user_id, action, timestamp, metadata FROM events")))
    assert len(stored[0]) == 4000
    assert stored[0] == stored[1]


def test_simulate_without_a_target_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    live = tmp_path / "live.db"
    done = _simulate("--events", "100", "--users", "5", "--days", "1", live=f"sqlite:///{live}")
    assert done.returncode == 2
    assert "one of the arguments --database-url --target is required" in done.stderr
    assert not live.exists()


def test_the_services_own_database_is_refused_unless_into_live(tmp_path: Path) -> None:
    live = tmp_path / "live.db"
    # Another spelling of the same file is the same database.
    args = ("--events", "100", "--users", "5", "--days", "1", "--quiet",
            "--database-url", f"sqlite:///{tmp_path}/./sub/../live.db")  # fmt: skip
    (tmp_path / "sub").mkdir()
    refused = _simulate(*args, live=f"sqlite:///{live}")
    assert refused.returncode == 2
    assert "is the service's own database" in refused.stderr
    assert "--into-live" in refused.stderr
    assert refused.stderr.count("\n") == 1
    assert "Traceback" not in refused.stderr
    assert not live.exists()
    allowed = _simulate(*args, "--into-live", live=f"sqlite:///{live}")
    assert allowed.returncode == 0, allowed.stderr
    with sqlite3.connect(live) as conn:
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone() == (100,)


def test_every_simulated_event_says_it_is_simulated(tmp_path: Path) -> None:
    db = tmp_path / "sim.db"
    done = _simulate("--events", "3000", "--users", "60", "--days", "7", "--quiet", "--workers", "2",
                     "--database-url", f"sqlite:///{db}")  # fmt: skip
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(db) as conn:
        marked = conn.execute("SELECT COUNT(*) FROM events WHERE json_extract(metadata, '$.simulated') = 1")
        assert marked.fetchone() == (3000,)
