"""The README's tour runs as written against a real server, and each command answers the status it says."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCUMENTED_URL = "http://127.0.0.1:8000"


@dataclass
class Example:
    command: str
    statuses: list[int]  # the first run's, then the same command repeated


def tour_examples() -> list[Example]:
    text = README.read_text(encoding="utf-8")
    tour = text.split("## A short tour", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    examples: list[Example] = []
    command: list[str] = []
    for line in tour.splitlines():
        if line.startswith("# →"):
            # The status line closes the command above it (which may span lines inside a quoted body).
            assert command, f"a status without a command: {line}"
            statuses = [int(re.match(r"# → (\d{3})", line).group(1))]  # type: ignore[union-attr]
            repeated = re.search(r"(\d{3}) when repeated", line)
            if repeated:
                statuses.append(int(repeated.group(1)))
            examples.append(Example("\n".join(command), statuses))
            command = []
        elif command or line.startswith("curl"):
            command.append(line)
        else:
            assert not line.strip() or line.startswith("#"), f"not a command, a comment or blank: {line}"
    assert not command, f"a command without the status it answers: {command}"
    return examples


def test_the_readme_fits_on_a_screen_or_two_and_its_links_exist() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    for link in re.findall(r"\]\(([^)#]+)\)", text):
        assert (ROOT / link).exists(), link
    # The architecture picture names modules that exist, the storage backends and the SDK routes included.
    named = set(re.findall(r"\b(?:app|analysis|notebooks|tests)/[\w/]*\w(?:\.py)?", text))
    assert len(named) >= 10
    assert [path for path in sorted(named) if not (ROOT / path).exists()] == []
    for backend in ("sqlite.py", "postgres.py", "memory.py"):
        assert backend in text
        assert (ROOT / "app" / "repository" / backend).exists()
    for module in ("policy.py", "edge.py"):
        assert (ROOT / "app" / "api" / module).exists()
    assert "PostgreSQL" in text
    assert "/v1/track" in text
    assert "/batch/" in text
    assert "make run" in text
    assert "make test" in text
    assert "make demo" in text


def test_every_curl_example_answers_the_status_the_readme_shows(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server()
    examples = tour_examples()
    assert len(examples) >= 10
    for example in examples:
        command = example.command.replace(DOCUMENTED_URL, server.base_url)
        for expected in example.statuses:
            done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30, check=False)
            assert done.returncode == 0, (example.command, done.stderr)
            status = int(done.stdout.rstrip()[-3:])
            assert status == expected, (example.command, done.stdout[-500:])
