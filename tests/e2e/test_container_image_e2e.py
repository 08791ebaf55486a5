"""The Dockerfile's HEALTHCHECK and CMD, run as written (python, no curl) against the real service."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
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


def _final_stage() -> dict[str, list[str]]:
    """Instructions of the Dockerfile's last stage: name -> the argument text of each occurrence."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    stage = text[text.rindex("\nFROM ") :]
    found: dict[str, list[str]] = {}
    for line in stage.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, rest = line.strip().partition(" ")
            found.setdefault(name, []).append(rest.strip())
    return found


def test_image_command_runs_from_the_files_the_image_copies(tmp_path: Path) -> None:
    """No engine here: lay out the runtime stage's files (COPY from the context, the data volume) in a temp root,
    then run its CMD with its ENV there: the service must start, pass the HEALTHCHECK and store into the volume."""
    stage = _final_stage()
    root = tmp_path / "image"
    workdir = root / stage["WORKDIR"][-1].lstrip("/")
    for copy in stage["COPY"]:
        if copy.startswith("--from="):
            continue  # the virtualenv of pinned requirements: this test runs in the same one
        source, target = copy.split()
        if (REPO / source).is_dir():
            shutil.copytree(REPO / source, workdir / target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (workdir / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / source, workdir / target)
    (volume,) = json.loads(stage["VOLUME"][0])
    (root / volume.lstrip("/")).mkdir(parents=True)
    env = dict(pair.split("=", 1) for entry in stage["ENV"] for pair in entry.split())
    database_url = env["TELEMETRY_DATABASE_URL"].replace(f"sqlite:///{volume}/", f"sqlite:///{root}{volume}/")
    assert database_url != env["TELEMETRY_DATABASE_URL"], "the database lives in the data volume"
    cmd: list[str] = json.loads(stage["CMD"][0])
    port = free_port()
    cmd = [sys.executable if part == "python" else part for part in cmd]
    cmd = ["127.0.0.1" if part == "0.0.0.0" else str(port) if part == "8000" else part for part in cmd]
    process = subprocess.Popen(
        cmd,
        cwd=workdir,
        env={"PATH": os.environ["PATH"], "PYTHONDONTWRITEBYTECODE": "1", "TELEMETRY_DATABASE_URL": database_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(_healthcheck_command(port), capture_output=True, timeout=30, check=False).returncode:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the image's CMD never became healthy"
            time.sleep(0.2)
        event = {"user_id": "u-1", "action": "signup", "source": "web", "metadata": {}}
        response = httpx.post(f"http://127.0.0.1:{port}/v1/events", json=event, timeout=10)
        assert response.status_code == 201, response.text
        assert (root / volume.lstrip("/") / "telemetry.db").stat().st_size > 0
    finally:
        process.terminate()
        process.wait(30)
