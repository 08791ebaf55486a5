"""A start that cannot work stops at once with one line on stderr naming the setting or path, exit code 2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
ROOT = Path(__file__).resolve().parents[2]


def _serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    return subprocess.run(
        [sys.executable, "-m", "app", "serve", *args],
        cwd=ROOT, env={**full, **env}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _assert_one_clear_line(done: subprocess.CompletedProcess[str], *names: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:], done.stdout[-2000:])
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("serve: ")
    for name in names:
        assert name in lines[0]
    assert "Traceback" not in done.stdout + done.stderr
    return lines[0]


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() == 0:  # root writes through permission bits: a read-only mount is what stops it
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], check=True)
        try:
            yield folder
        finally:
            subprocess.run(["umount", str(folder)], check=True)
    else:
        folder.chmod(0o500)
        yield folder
        folder.chmod(0o700)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"TELEMETRY_WRITE_QUEUE_MAX": "0"}, ["TELEMETRY_WRITE_QUEUE_MAX", "greater than or equal to 1"]),
        ({"TELEMETRY_LOG_LEVEL": "LOUD"}, ["TELEMETRY_LOG_LEVEL", "'DEBUG'"]),
        ({"TELEMETRY_API_KEYS": "just-a-key"}, ["TELEMETRY_API_KEYS", "name:sha256hex:scope1+scope2"]),
        ({"TELEMETRY_DATABASE_URL": "mysql://db/telemetry"}, ["TELEMETRY_DATABASE_URL", "sqlite:///PATH"]),
    ],
)
def test_a_bad_setting_is_named_in_one_line(env: dict[str, str], names: list[str]) -> None:
    _assert_one_clear_line(_serve(env), *names)


def test_a_read_only_folder_is_named(read_only_folder: Path) -> None:
    line = _assert_one_clear_line(
        _serve({"TELEMETRY_DATABASE_URL": f"sqlite:///{read_only_folder}/data/telemetry.db"}),
        "TELEMETRY_DATABASE_URL", str(read_only_folder),
    )  # fmt: skip
    assert "writ" in line  # says it needs a folder it may write


def test_an_unreachable_postgresql_is_named() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    env = {"TELEMETRY_DATABASE_URL": url, "TELEMETRY_POSTGRES_STARTUP_TIMEOUT_S": "0"}
    _assert_one_clear_line(_serve(env), "TELEMETRY_DATABASE_URL", "unreachable", "check that the server is up")


def test_a_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _serve({"TELEMETRY_DATABASE_URL": f"sqlite:///{tmp_path / 't.db'}"}, "--port", str(port))
    _assert_one_clear_line(done, f"--port {port}", "already in use", "PORT=")


def test_at_debug_level_the_traceback_follows() -> None:
    done = _serve({"TELEMETRY_DATABASE_URL": "mysql://db/telemetry", "TELEMETRY_LOG_LEVEL": "DEBUG"})
    assert done.returncode == 2
    assert "Traceback" in done.stderr
    assert done.stderr.splitlines()[-1].startswith("serve: TELEMETRY_DATABASE_URL")
