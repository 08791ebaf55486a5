"""The Dockerfile's HEALTHCHECK command, run as written (python, no curl) against the real service."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.support.monitoring import REPO
from tests.support.server import ServerProcess, free_port

pytestmark = pytest.mark.e2e


def _healthcheck_command(port: int) -> list[str]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    match = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])\s*$", text, re.MULTILINE)
    assert match, "the Dockerfile has an exec-form HEALTHCHECK"
    command: list[str] = json.loads(match.group(1))
    assert command[0] == "python", "the slim image has python, not curl"
    assert "127.0.0.1:8000/healthz" in command[-1]
    # the image's python is ours here; the service under test listens on a free port instead of 8000
    return [sys.executable, *(part.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for part in command[1:])]


def test_healthcheck_passes_against_the_running_service(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server()
    result = subprocess.run(_healthcheck_command(server.port), capture_output=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr


def test_healthcheck_fails_when_nothing_answers() -> None:
    result = subprocess.run(_healthcheck_command(free_port()), capture_output=True, timeout=30, check=False)
    assert result.returncode != 0
