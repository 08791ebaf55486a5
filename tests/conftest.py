"""Suite-wide rules: in CI a skipped test is a failure, never a silent pass."""

from __future__ import annotations

import os

import pytest


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not os.environ.get("CI"):
        return
    skipped = reporter.stats.get("skipped", [])
    if skipped:
        reporter.write_line(f"CI=true and {len(skipped)} test(s) skipped: a skip in CI is a failure", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
