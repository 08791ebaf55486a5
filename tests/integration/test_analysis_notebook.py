"""The notebook end to end: executed in a real kernel against simulated data, exported as HTML.

Any cell error fails the report (and so this test): the notebook cannot silently rot.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from app.commands.report import ReportFailed, build_report, execute_notebook
from app.simulation import SimulationParams
from tests.integration.analysis_support import simulate_into

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("notebook") / "events.db"
    return simulate_into(path, SimulationParams(events=20_000, users=500, days=21, seed=2))


def test_report_command_runs_every_cell_and_writes_self_contained_html(database_url: str, tmp_path: Path) -> None:
    out, executed = tmp_path / "report.html", tmp_path / "executed.ipynb"
    done = subprocess.run(
        [sys.executable, "-m", "app", "report", "--database-url", database_url, "--out", str(out),
         "--executed", str(executed)],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    nb = nbformat.read(executed, as_version=4)
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = out.read_text(encoding="utf-8")
    assert len(re.findall(r'<img[^>]+src="data:image/png;base64,', html)) >= 10  # figures embedded
    assert not re.search(r'(src|href)="https?://', html)  # nothing fetched when the report opens
    assert "from analysis import" not in html
    assert "plt.subplots" not in html
    # Findings are computed: the planted peak hour (20:00 UTC by default) is written out.
    assert "Traffic peaks at" in html
    assert re.search(r"peaks at <strong>(19|20|21):00 UTC</strong>", html)


def test_a_failing_cell_fails_the_report_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    with pytest.raises(ReportFailed, match="DatabaseNotFound"):
        build_report(f"sqlite:///{tmp_path / 'missing.db'}", out)
    assert not out.exists()


def test_the_notebook_kernel_is_the_python_running_the_suite(tmp_path: Path) -> None:
    probe = nbformat.v4.new_notebook()
    probe.cells = [nbformat.v4.new_code_cell("import sys, pandas, analysis\nprint(sys.prefix)")]
    notebook = tmp_path / "probe.ipynb"
    nbformat.write(probe, notebook)
    executed = execute_notebook(notebook, "sqlite:///unused.db")
    printed = executed.cells[0].outputs[0].text.strip()
    assert printed == sys.prefix  # the venv's prefix, not the base interpreter's
