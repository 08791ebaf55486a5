"""What a developer types at a terminal: `python -m app --help`, `make run PORT= HOST=`, console logs."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from app.cli import build_parser
from tests.support.server import ServerProcess, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
ROOT = Path(__file__).resolve().parents[2]
EVENT = {"user_id": "u1", "action": "click", "source": "web"}


def test_help_shows_every_option_of_every_command_with_its_default() -> None:
    done = subprocess.run([sys.executable, "-m", "app", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=30, check=True)  # fmt: skip
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(commands) == {"serve", "hash-key", "simulate", "report", "export", "import", "erase", "retention"}
    for name, sub in commands.items():
        line = next(line for line in done.stdout.splitlines() if line.strip().startswith(name))
        assert line
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.option_strings[-1] in done.stdout, (name, action.option_strings)
    assert "--port [8000]" in done.stdout
    assert "--host [127.0.0.1]" in done.stdout
    assert "--workers [1]" in done.stdout
    assert "docs/configuration.md" in done.stdout
    serve_help = subprocess.run([sys.executable, "-m", "app", "serve", "--help"], cwd=ROOT, capture_output=True,
                                text=True, timeout=30, check=True).stdout  # fmt: skip
    assert "default: 8000" in " ".join(serve_help.split())


def test_make_run_takes_port_and_host(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEMETRY_", "MAKE"))}
    env["TELEMETRY_DATABASE_URL"] = f"sqlite:///{tmp_path / 'run.db'}"
    make = subprocess.Popen(["make", "run", f"PORT={port}", "HOST=127.0.0.1"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and status != 200:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code
            except httpx.TransportError:
                time.sleep(0.2)
        assert status == 200
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        make.wait(30)


def test_console_log_format_prints_readable_lines_instead_of_json(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(env={"TELEMETRY_LOG_FORMAT": "console"})
    assert server.client.post("/v1/events", json=EVENT).status_code == 201
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any("event_recorded" in line for line in server.stdout):
        time.sleep(0.05)
    line = next(line for line in server.stdout if "event_recorded" in line)
    assert "user_id=u1" in line
    assert "action=click" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)
    assert "\x1b[" not in line  # not a terminal: no colour codes in a file or pipe


def test_json_stays_the_default(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server()
    assert server.client.post("/v1/events", json=EVENT).status_code == 201
    assert server.wait_for_log(lambda line: line.get("event") == "event_recorded")
