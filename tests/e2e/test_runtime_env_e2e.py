"""Every command works from the environment `make run` builds (requirements.txt only), or says in one line
which make target installs what it needs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).parent / "uv"  # installed by the Makefile (requirements-tools.txt)


@pytest.fixture(scope="module")
def runtime_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with exactly what `make run` installs, built the way the Makefile builds it."""
    venv = tmp_path_factory.mktemp("runtime") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([str(UV), "pip", "install", "-q", "--python", str(python), "-r", str(ROOT / "requirements.txt")],
                   check=True, timeout=240)  # fmt: skip
    return python


def _run(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    return subprocess.run([str(python), "-m", "app", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def test_the_runtime_environment_has_no_analysis_packages(runtime_python: Path) -> None:
    probe = subprocess.run([str(runtime_python), "-c", "import nbformat"], capture_output=True, check=False)
    assert probe.returncode != 0  # what a `make run` user has: the checks below are about that environment


def test_report_says_in_one_line_which_target_installs_it(runtime_python: Path, tmp_path: Path) -> None:
    done = _run(runtime_python, "report", "--database-url", f"sqlite:///{tmp_path / 'none.db'}")
    assert done.returncode != 0
    assert "make analysis-deps" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_simulate_and_export_work_from_the_runtime_environment(
    runtime_python: Path, start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server()
    sent = _run(runtime_python, "simulate", "--events", "500", "--users", "20", "--days", "2",
                "--target", server.base_url)  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert "accepted 500, rejected 0" in sent.stderr
    assert "make analysis-deps" in sent.stderr  # no progress bar without tqdm, and it says how to get one
    db = f"sqlite:///{tmp_path / 'sim.db'}"
    assert _run(runtime_python, "simulate", "--events", "500", "--users", "20", "--days", "2", "--quiet",
                "--database-url", db).returncode == 0  # fmt: skip
    exported = _run(runtime_python, "export", "--database-url", db, "--format", "csv")
    assert exported.returncode == 0, exported.stderr
    assert len(exported.stdout.strip().splitlines()) == 501  # header and every event
