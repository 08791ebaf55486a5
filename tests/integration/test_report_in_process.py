"""The report's notebook run in the command's own process (app/commands/notebook_run.py): the outputs a Jupyter
kernel would have sent, in the same order and shape, without starting one."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from app.commands.report import ReportFailed, execute_notebook

PROBE_CELLS = (
    "import os, sys\nfrom IPython.display import HTML, display\nprint('first line')\nprint('second line')",
    "print('to stderr', file=sys.stderr)\nhandle = display({'text/plain': 'being drawn'}, raw=True, display_id=True)",
    "display(HTML('<b>bold</b>'), metadata={'note': 1})\n6 * 7",
    "handle.update({'text/plain': 'drawn', 'image/svg+xml': '<svg/>'}, metadata={'alt': 'a chart'}, raw=True)",
    "print(os.environ['TELEMETRY_DATABASE_URL'], os.getcwd())",
)


def _probe(tmp_path: Path, cells: tuple[str, ...] = PROBE_CELLS) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# probe"), *(nbformat.v4.new_code_cell(c) for c in cells)]
    path = tmp_path / "probe.ipynb"
    nbformat.write(nb, path)
    return path


def _outputs(nb: nbformat.NotebookNode) -> list[list[dict[str, object]]]:
    """Each code cell's outputs as plain data, without what only says where they ran."""
    kept = ("output_type", "name", "text", "data", "metadata", "ename", "execution_count")
    return [[{k: o[k] for k in kept if k in o} for o in c.outputs] for c in nb.cells if c.cell_type == "code"]


def test_the_notebook_runs_in_the_command_process_by_default(tmp_path: Path) -> None:
    executed = execute_notebook(_probe(tmp_path, ("import os\nprint(os.getpid())",)), "sqlite:///unused.db")
    assert int(executed.cells[1].outputs[0].text) == os.getpid()


def test_in_process_outputs_are_the_kernels_outputs(tmp_path: Path) -> None:
    probe = _probe(tmp_path)
    in_process = execute_notebook(probe, "sqlite:///unused.db")
    in_kernel = execute_notebook(probe, "sqlite:///unused.db", kernel=True)
    assert _outputs(in_process) == _outputs(in_kernel)
    # What the probe shows, spelled out: streams merged per name, the update in place, the last value kept.
    cells = _outputs(in_process)
    assert cells[0] == [{"output_type": "stream", "name": "stdout", "text": "first line\nsecond line\n"}]
    assert cells[1][0] == {"output_type": "stream", "name": "stderr", "text": "to stderr\n"}
    assert cells[1][1]["data"] == {"text/plain": "drawn", "image/svg+xml": "<svg/>"}
    assert cells[1][1]["metadata"] == {"alt": "a chart"}
    assert cells[2][1] == {"output_type": "execute_result", "data": {"text/plain": "42"}, "metadata": {},
                           "execution_count": 3}  # fmt: skip
    assert cells[3] == []


def test_the_cells_see_the_report_settings_and_the_command_gets_its_own_back(tmp_path: Path) -> None:
    before_env, before_cwd = dict(os.environ), Path.cwd()
    executed = execute_notebook(_probe(tmp_path), "sqlite:///somewhere.db")
    url, cwd = executed.cells[-1].outputs[0].text.split()
    assert url == "sqlite:///somewhere.db"
    assert Path(cwd) == Path(__file__).resolve().parents[2]  # the repository root, as the kernel's cwd
    assert dict(os.environ) == before_env
    assert Path.cwd() == before_cwd


def test_a_failing_cell_stops_the_run_with_its_traceback(tmp_path: Path) -> None:
    probe = _probe(tmp_path, ("x = 1", "raise LookupError('no such action')", "print('never')"))
    with pytest.raises(ReportFailed, match=r"LookupError: no such action") as failed:
        execute_notebook(probe, "sqlite:///unused.db")
    assert "raise LookupError('no such action')" in str(failed.value)


def test_a_cell_past_its_timeout_fails_the_report(tmp_path: Path) -> None:
    probe = _probe(tmp_path, ("import time\ntime.sleep(30)",))
    with pytest.raises(ReportFailed, match="CellTimedOut: the cell ran longer than its 1 s timeout"):
        execute_notebook(probe, "sqlite:///unused.db", cell_timeout=1)


def test_a_notebook_run_after_another_finds_the_charts_and_matplotlib_as_a_fresh_kernel_would(tmp_path: Path) -> None:
    # The first notebook fails with a chart still being drawn in the background, in PNG, and a changed rcParam.
    first = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})\n"
        "import matplotlib.pyplot as plt\nfrom analysis import charts\n"
        "plt.rcParams['figure.dpi'] = 33\ncharts.use_chart_format('png')\ncharts.render_in_background(workers=1)\n"
        "fig, ax = plt.subplots(); ax.set_title('t'); ax.set_xlabel('x'); ax.set_ylabel('y'); charts.show(fig)",
        "raise RuntimeError('stopped before finish_rendering')",
    )
    with pytest.raises(ReportFailed, match="stopped before finish_rendering"):
        execute_notebook(_probe(tmp_path, first), "sqlite:///unused.db")
    second = (
        "import matplotlib.pyplot as plt\nfrom analysis import charts\n"
        "print(charts.finish_rendering(), charts._format, plt.rcParams['figure.dpi'], len(plt.get_fignums()))",
    )
    executed = execute_notebook(_probe(tmp_path, second), "sqlite:///unused.db")
    assert executed.cells[1].outputs[0].text.split() == ["0", "svg", "100.0", "0"]
