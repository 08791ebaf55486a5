"""Suite-wide rules: in CI a skipped test is a failure, never a silent pass."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import ServerProcess


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not os.environ.get("CI"):
        return
    skipped = reporter.stats.get("skipped", [])
    if skipped:
        reporter.write_line(f"CI=true and {len(skipped)} test(s) skipped: a skip in CI is a failure", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Factory: start_server(env={...}) runs the real service on a free port with a temp SQLite file."""
    started: list[ServerProcess] = []

    def start(database_url: str | None = None, **kwargs: Any) -> ServerProcess:
        url = database_url or f"sqlite:///{tmp_path / 'telemetry.db'}"
        server = ServerProcess(url, **kwargs).wait_ready()
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.kill()
