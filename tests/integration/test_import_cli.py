"""`python -m app import` as a user runs it, on SQLite and on PostgreSQL: real processes, real stores."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.support.postgres import fresh_schema

ROOT = Path(__file__).resolve().parents[2]

NewStore = Callable[[], str]
AWKWARD = {"emoji": "🙂", "quote": 'say "hi"\n\ttab', "big": 18446744073709551615, "tiny": 1e-7, "n": {"l": [1, None]}}


def app_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=180,
        check=False,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NewStore]:
    """Factory of empty stores of the parametrised backend: new_store() -> database URL."""
    counter = iter(range(100))
    with ExitStack() as schemas:

        def make() -> str:
            if request.param == "sqlite":
                return f"sqlite:///{tmp_path / f'store{next(counter)}.db'}"
            return schemas.enter_context(fresh_schema("imp"))

        yield make


def exported(url: str, tmp_path: Path, fmt: str = "ndjson") -> Path:
    out = tmp_path / f"export-{uuid.uuid4().hex[:8]}.{fmt}"
    done = app_cli("export", "--database-url", url, "--format", fmt, "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


def seeded(url: str) -> None:
    done = app_cli("simulate", "--events", "1500", "--users", "40", "--days", "7", "--seed", "3", "--quiet",
                   "--database-url", url)  # fmt: skip
    assert done.returncode == 0, done.stderr


def line(**fields: object) -> str:
    event = {"user_id": "u1", "action": "click", "source": "web", "timestamp": "2024-03-01T10:00:00Z"}
    event.update(fields)
    return json.dumps(event)


def test_export_import_export_gives_the_same_bytes_and_a_rerun_stores_nothing_twice(
    new_store: NewStore,
    tmp_path: Path,
) -> None:
    source = new_store()
    seeded(source)
    extra = "\n".join(line(event_id=str(uuid.uuid4()), user_id=f"awk-{i}", metadata=AWKWARD) for i in range(3))
    assert app_cli("import", "-", "--database-url", source, "--quiet", stdin=extra + "\n").returncode == 0
    first = exported(source, tmp_path)

    target = new_store()
    done = app_cli("import", str(first), "--database-url", target)
    assert done.returncode == 0, done.stderr
    assert "100%" in done.stderr  # the progress bar
    assert "accepted 1503, duplicate 0, conflict 0, invalid 0" in done.stderr
    assert exported(target, tmp_path).read_bytes() == first.read_bytes()

    again = app_cli("import", str(first), "--database-url", target, "--quiet")
    assert again.returncode == 0, again.stderr
    assert "accepted 0, duplicate 1503" in again.stderr
    assert exported(target, tmp_path).read_bytes() == first.read_bytes()


def test_csv_export_imports_to_the_same_events(new_store: NewStore, tmp_path: Path) -> None:
    source = new_store()
    seeded(source)
    target = new_store()
    done = app_cli("import", str(exported(source, tmp_path, "csv")), "--database-url", target, "--quiet")
    assert done.returncode == 0, done.stderr
    assert "accepted 1500" in done.stderr
    assert exported(target, tmp_path).read_bytes() == exported(source, tmp_path).read_bytes()


def test_bad_lines_are_reported_by_number_and_the_rest_is_imported(new_store: NewStore) -> None:
    url = new_store()
    conflicting_id = str(uuid.uuid4())
    lines = [
        line(event_id=conflicting_id),
        "{not json",
        line(user_id=""),  # the API's schema refuses an empty user_id
        "",  # blank: nothing, not an error
        line(timestamp="1999-12-31T23:59:59Z"),  # before TELEMETRY_TIMESTAMP_MIN
        line(event_id=conflicting_id, action="other"),  # same id, another fact
        line(timestamp="2001-06-01T00:00:00Z"),  # historical, within the window: accepted
    ]
    done = app_cli("import", "-", "--database-url", url, "--quiet", stdin="\n".join(lines) + "\n")
    assert done.returncode == 1
    assert "-:2: not JSON" in done.stderr
    assert "-:3: user_id" in done.stderr
    assert "-:5: timestamp" in done.stderr
    assert "-:6: conflict" in done.stderr
    assert "accepted 2, duplicate 0, conflict 1, invalid 3" in done.stderr
    assert "Traceback" not in done.stderr


def test_strict_stops_at_the_first_bad_line(new_store: NewStore, tmp_path: Path) -> None:
    url = new_store()
    lines = [line(user_id="before"), line(timestamp="1990-01-01T00:00:00Z"), line(user_id="after")]
    done = app_cli("import", "-", "--strict", "--database-url", url, "--quiet", stdin="\n".join(lines) + "\n")
    assert done.returncode == 1
    assert "-:2: timestamp" in done.stderr
    assert "stopped at line 2" in done.stderr
    users = [json.loads(x)["user_id"] for x in exported(url, tmp_path).read_text().splitlines()]
    assert users == ["before"]


def test_segment_and_posthog_messages_import_one_a_line(new_store: NewStore, tmp_path: Path) -> None:
    url = new_store()
    messages = [
        {"type": "track", "event": "Signed Up", "userId": "seg-1", "messageId": "m-1",
         "timestamp": "2023-02-01T08:00:00Z", "properties": {"plan": "pro"}},
        {"type": "identify", "userId": "seg-1", "messageId": "m-2", "traits": {"email": "x@example.com"}},
        {"event": "$pageview", "distinct_id": "ph-1", "uuid": str(uuid.uuid4()),
         "timestamp": "2023-02-02T09:00:00Z", "properties": {"$current_url": "https://example.com/"}},
    ]  # fmt: skip
    text = "\n".join(json.dumps(m) for m in messages) + "\n"
    done = app_cli("import", "-", "--database-url", url, "--quiet", stdin=text)
    assert done.returncode == 0, done.stderr
    assert "accepted 2, duplicate 0, conflict 0, invalid 0, skipped 1" in done.stderr
    again = app_cli("import", "-", "--database-url", url, "--quiet", stdin=text)
    assert "accepted 0, duplicate 2" in again.stderr  # ids derived from the message ids
    events = [json.loads(x) for x in exported(url, tmp_path).read_text().splitlines()]
    assert [(e["user_id"], e["timestamp"]) for e in events] == [
        ("seg-1", "2023-02-01T08:00:00.000000Z"),
        ("ph-1", "2023-02-02T09:00:00.000000Z"),
    ]
