"""`make demo` as a new user runs it: a fresh clone, its own .venv, a separate demo database, the HTML report."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[2]
# The bound is 90 s on this 2-core machine with a warm package cache. The suite runs this beside other
# tests on the same shared cores, so the test allows a wide margin; the time is printed for the record.
DEMO_BOUND_S = 240


def test_make_demo_from_a_fresh_clone_builds_the_report_from_a_separate_database(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    # What is committed, as a new user gets it: no .venv, no data/.
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEMETRY_", "VIRTUAL_ENV", "MAKE"))}
    started = time.monotonic()
    done = subprocess.run(["make", "demo"], cwd=clone, env=env, capture_output=True, text=True, timeout=800)
    seconds = time.monotonic() - started
    print(f"make demo from a fresh clone: {seconds:.1f} s")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    report = clone / "data" / "demo" / "report.html"
    assert report.stat().st_size > 100_000
    assert "<img" in report.read_text(encoding="utf-8")  # figures embedded
    assert f"file://{report}" in done.stdout
    assert "python -m http.server --directory data/demo" in done.stdout
    assert re.search(r"demo: done in \d+ s", done.stdout)
    # A month of simulated events in the demo database, and nothing in the service's live one.
    with sqlite3.connect(clone / "data" / "demo" / "demo.db") as conn:
        total, marked, days = conn.execute(
            "SELECT COUNT(*), SUM(json_extract(metadata, '$.simulated') = 1),"
            " julianday(MAX(timestamp)) - julianday(MIN(timestamp)) FROM events"
        ).fetchone()
    assert total >= 200_000
    assert marked == total
    assert days > 27
    assert not (clone / "data" / "telemetry.db").exists()
    assert seconds < DEMO_BOUND_S, f"make demo took {seconds:.0f} s"
