"""Charts drawn in worker processes (analysis/charts.py's background renderer) reach the executed notebook
exactly as charts drawn in the kernel do: in the cell that showed them, as the same SVG or PNG bytes, with
the title as alternative text. Run as `python -m app report` runs the notebook (its cells in the command's
process, app/commands/notebook_run.py)."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest

from app.cli import main as cli_main
from app.commands.report import ROOT, execute_notebook

MIME = {"svg": "image/svg+xml", "png": "image/png"}

FIGURE = """
import matplotlib
matplotlib.use("agg")
import matplotlib.pyplot as plt
from analysis.charts import percent_axis, thousands_axis, show
plt.rcParams.update({"figure.dpi": 90})

def chart(title, formatter=None):
    fig, ax = plt.subplots(figsize=(4, 2))
    ax.bar(["a", "b", "c"], [1200, 3400, 560])
    ax.set_title(title); ax.set_xlabel("action"); ax.set_ylabel("events")
    thousands_axis(ax.yaxis)
    if formatter is not None:
        ax.xaxis.set_major_formatter(formatter)
    return fig
"""


def run_cells(tmp_path: Path, *cells: str) -> Any:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(f"import sys; sys.path.insert(0, {str(ROOT)!r})\n" + FIGURE)]
    notebook.cells += [nbformat.v4.new_code_cell(source) for source in cells]
    path = tmp_path / "charts.ipynb"
    nbformat.write(notebook, path)
    return execute_notebook(path, "sqlite:///unused.db")


def images(cell: Any, fmt: str = "svg") -> list[tuple[bytes, str]]:
    mime = MIME[fmt]
    return [
        (out.data[mime].encode() if fmt == "svg" else base64.b64decode(out.data[mime]), out.metadata[mime]["alt"])
        for out in cell.outputs
        if mime in out.get("data", {})
    ]


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_a_chart_drawn_in_the_background_lands_in_its_own_cell_as_the_kernel_would_draw_it(
    fmt: str, tmp_path: Path
) -> None:
    executed = run_cells(
        tmp_path,
        f"from analysis.charts import use_chart_format\nuse_chart_format({fmt!r})\nshow(chart('First'))",  # reference
        "from analysis.charts import render_in_background, finish_rendering\nrender_in_background(workers=1)",
        "show(chart('First'))",
        "show(chart('Second'))",
        "print('placed', finish_rendering())",
    )
    (reference,) = images(executed.cells[1], fmt)
    (first,) = images(executed.cells[3], fmt)
    (second,) = images(executed.cells[4], fmt)
    assert first == reference  # same bytes (another process: no random ids in an SVG), same alternative text
    assert second[1] == "Second"
    assert second[0] != reference[0]
    assert second[0].startswith(b"<svg " if fmt == "svg" else b"\x89PNG")
    assert executed.cells[5].outputs[0].text.strip() == "placed 2"


def test_an_svg_chart_is_titled_keeps_its_texts_as_text_and_carries_no_date(tmp_path: Path) -> None:
    executed = run_cells(tmp_path, "show(chart('Events & users <per action>'))")
    ((data, alt),) = images(executed.cells[1])
    svg = data.decode()
    assert alt == "Events & users <per action>"
    assert re.match(r"<svg [^>]*>\s*<title>Events &amp; users &lt;per action&gt;</title>", svg)
    assert "<text" in svg  # svg.fonttype none: no glyph outlines
    texts = re.findall(r"<text\b[^>]*>([^<]*)</text>", svg)
    assert "events" in texts, texts  # the axis label and a tick label, searchable text
    assert "1,200" in texts, texts
    assert "<dc:date>" not in svg  # nothing dated
    assert "<?xml" not in svg  # embedded in a page: no prologue


def test_an_unknown_chart_format_is_refused(tmp_path: Path) -> None:
    executed = run_cells(
        tmp_path,
        "from analysis.charts import use_chart_format\n"
        "try:\n    use_chart_format('jpeg')\nexcept ValueError as exc:\n    print(exc)",
    )
    assert executed.cells[1].outputs[0].text.strip() == "chart format 'jpeg': one of svg, png"


def test_the_report_command_hands_its_chart_format_to_the_notebook(tmp_path: Path) -> None:
    probe = nbformat.v4.new_notebook()
    probe.cells = [nbformat.v4.new_code_cell("import os\nprint(os.environ['TELEMETRY_REPORT_CHART_FORMAT'])")]
    notebook = tmp_path / "probe.ipynb"
    nbformat.write(probe, notebook)
    assert execute_notebook(notebook, "sqlite:///unused.db").cells[0].outputs[0].text.strip() == "svg"
    executed = execute_notebook(notebook, "sqlite:///unused.db", chart_format="png")
    assert executed.cells[0].outputs[0].text.strip() == "png"


def test_a_figure_that_cannot_be_pickled_is_drawn_in_the_kernel(tmp_path: Path) -> None:
    executed = run_cells(
        tmp_path,
        "from analysis.charts import render_in_background, finish_rendering\nrender_in_background(workers=1)",
        "from matplotlib.ticker import FuncFormatter\nshow(chart('Local', FuncFormatter(lambda v, _p: f'{v:.0f}')))",
        "print('placed', finish_rendering())",
    )
    ((data, alt),) = images(executed.cells[2])  # there at once: no placeholder waited for it
    assert alt == "Local"
    assert data.startswith(b"<svg ")
    assert executed.cells[3].outputs[0].text.strip() == "placed 0"


def test_without_a_background_renderer_finishing_does_nothing(tmp_path: Path) -> None:
    executed = run_cells(tmp_path, "from analysis.charts import finish_rendering\nprint(finish_rendering())")
    assert executed.cells[1].outputs[0].text.strip() == "0"


@pytest.mark.parametrize("value", ["-1", "two", "1.5"])
def test_a_render_process_count_that_is_not_a_whole_number_is_refused_before_anything_runs(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli_main(["report", "--render-processes", value, "--out", "unused.html"])
    assert exit_.value.code == 2
    assert "--render-processes: a number of processes, 0 or more" in capsys.readouterr().err
