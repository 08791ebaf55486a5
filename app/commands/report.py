"""`python -m app report`: execute the analysis notebook against a database and export it as one
self-contained HTML file (figures embedded as SVG or PNG images, code hidden)."""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import importlib.util
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "telemetry_analysis.ipynb"
TEMPLATES = ROOT / "notebooks" / "report_template"
KERNEL = "python3"  # the kernel of the Python running this command (ipykernel installed beside it)
# What executing and exporting the notebook imports; none of it is needed to serve, so `make run` lacks it.
ANALYSIS_MODULES = (
    "nbformat", "nbclient", "nbconvert", "ipykernel", "numpy", "pandas", "matplotlib",
    "duckdb", "pyarrow", "adbc_driver_manager", "adbc_driver_sqlite", "adbc_driver_postgresql",
)  # fmt: skip
INSTALL_HINT = "make analysis-deps"  # the Makefile target that installs requirements-analysis.txt
# How the charts are embedded (analysis.charts.CHART_FORMATS; repeated here: the parser must not import it).
CHART_FORMATS = ("svg", "png")
# Cells with these tags open the exported report, in this order: provenance, then the findings.
LEADING_TAGS = ("header", "summary")


class ReportFailed(RuntimeError):
    """A notebook cell raised: the report would be incomplete or wrong, so none is written."""


class NothingToReport(RuntimeError):
    """The database holds no events (or is not there): there is no finding to write."""


def missing_dependency() -> str | None:
    """The first analysis module that cannot be imported, or None when all are there."""
    for name in ANALYSIS_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a module set to None in sys.modules, or a broken install
            found = False
        if not found:
            return name
    return None


def _analysis(module: str = "analysis") -> Any:
    # Imported by name: the analysis package is typed against pandas, which mypy here has no stubs for,
    # and the service's strict type check stops at this boundary.
    return importlib.import_module(module)


def public_url(database_url: str) -> str:
    return str(_analysis("analysis.presentation").public_url(database_url))


def has_events(database_url: str) -> bool:
    """Whether the store holds any event, asked of the store itself through the analysis package's
    read-only opening (analysis.store: the driver alone, no engine, no pandas; the first row answers)."""
    store = _analysis("analysis.store")
    try:
        return bool(store.has_events(database_url))
    except (store.DatabaseNotFound, store.UnsupportedDatabaseUrl) as exc:
        raise NothingToReport(str(exc)) from exc
    except Exception as exc:  # the driver's own errors (server down, no such table): one line, not a traceback
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NothingToReport(f"cannot read {public_url(database_url)}: {first_line}") from exc


def _processes(text: str) -> int:
    """argparse type of --render-processes: a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"a number of processes, 0 or more, not {text!r}")
    return value


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "report", help="run the analysis notebook and export a self-contained HTML report"
    )
    parser.add_argument("--database-url", default=None, help="database to analyse (default: TELEMETRY_DATABASE_URL)")
    parser.add_argument("--out", type=Path, default=Path("report.html"))
    parser.add_argument("--notebook", type=Path, default=NOTEBOOK)
    parser.add_argument("--executed", type=Path, default=None, help="also save the executed notebook here")
    parser.add_argument("--cell-timeout", type=int, default=600, help="seconds one cell may run")
    parser.add_argument(
        "--cache-dir", type=Path, default=None,
        help="where the engine's copy of the events is kept between runs, so a run reads only new events "
        "(default: $XDG_CACHE_HOME/telemetry-analysis, else ~/.cache/telemetry-analysis)",
    )  # fmt: skip
    parser.add_argument("--no-cache", action="store_true", help="read every event from the store, keep nothing")
    parser.add_argument(
        "--render-processes", type=_processes, default=None, metavar="N",
        help="worker processes that draw the charts while the notebook goes on; 0 draws them in the notebook's "
        "kernel (default: one fewer than the cores, at least 1, at most 2)",
    )  # fmt: skip
    parser.add_argument(
        "--chart-format", choices=CHART_FORMATS, default=CHART_FORMATS[0],
        help="how the charts are embedded: svg (texts kept as text, a third less CPU to draw) or png",
    )  # fmt: skip
    parser.add_argument(
        "--kernel", action="store_true",
        help="run the notebook in a fresh Jupyter kernel process, as Jupyter does (default: in this process, "
        "in an IPython shell: the same outputs, ~2 s sooner)",
    )  # fmt: skip
    parser.set_defaults(handler=run)


def execute_notebook(
    notebook: Path,
    database_url: str,
    cell_timeout: int = 600,
    cache_dir: Path | None = None,
    render_processes: int = 0,
    chart_format: str = CHART_FORMATS[0],
    kernel: bool = False,
    while_waiting: Callable[[], None] | None = None,
) -> Any:
    """Run every cell, in this process (an IPython shell: app/commands/notebook_run.py) or with `kernel` in a
    fresh Jupyter kernel; the database, the cache directory (None: no cache), the chart rendering processes
    (0: charts drawn where the cells run) and the chart format reach the parameters cell through the
    environment. `while_waiting`: in this process, run by the notebook's finish_rendering() before it waits
    for the chart worker (analysis.charts.while_waiting)."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)  # type: ignore[no-untyped-call]  # nbformat's API is untyped
    settings = {
        "TELEMETRY_DATABASE_URL": database_url, "MPLBACKEND": "agg",
        "TELEMETRY_ANALYSIS_CACHE": str(cache_dir) if cache_dir is not None else "",
        "TELEMETRY_REPORT_RENDER_PROCESSES": str(render_processes),  # analysis/charts.py's background renderer
        "TELEMETRY_REPORT_CHART_FORMAT": chart_format,
    }  # fmt: skip
    if not kernel:
        from app.commands.notebook_run import CellFailed, run_notebook

        if while_waiting is not None:
            _analysis("analysis.charts").while_waiting(while_waiting)
        try:
            return run_notebook(nb, settings, ROOT, cell_timeout)
        except CellFailed as exc:
            raise ReportFailed(str(exc)) from exc
        finally:  # the chart module's state as a fresh kernel has it, for the next notebook run here
            if "analysis.charts" in sys.modules:
                sys.modules["analysis.charts"].reset()
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    env = {**os.environ, **settings}
    client = NotebookClient(nb, kernel_name=KERNEL, timeout=cell_timeout, resources={"metadata": {"path": str(ROOT)}})
    try:
        client.execute(env=env)
    except CellExecutionError as exc:
        raise ReportFailed(str(exc)) from exc
    return nb


def lead_with_summary(nb: Any) -> Any:
    """The notebook with its header and summary cells moved to the top: the summary is computed last
    (it draws on every section) but a reader wants it first."""

    def rank(cell: Any) -> int:
        tags = cell.get("metadata", {}).get("tags", [])
        return next((i for i, tag in enumerate(LEADING_TAGS) if tag in tags), len(LEADING_TAGS))

    ordered = copy.deepcopy(nb)
    ordered.cells = sorted(ordered.cells, key=rank)  # sorted is stable: the other cells keep their order
    return ordered


_RESOURCES = {"metadata": {"name": "Telemetry analysis"}}


def html_exporter() -> Any:
    """nbconvert's exporter for the report, its templates compiled (an empty notebook exported once): ~0.5 s
    of imports and Jinja compilation that build_report does while the chart worker draws the last charts."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(  # type: ignore[no-untyped-call]  # traitlets constructors are untyped
        template_name="telemetry_report",
        extra_template_basedirs=[str(TEMPLATES)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    exporter.from_notebook_node(nbformat.v4.new_notebook(), resources=_RESOURCES)  # type: ignore[no-untyped-call]
    return exporter


def export_html(nb: Any, exporter: Any = None) -> str:
    """HTML of the executed notebook without its code: outputs and markdown only, summary first."""
    exporter = exporter or html_exporter()
    body, _resources = exporter.from_notebook_node(lead_with_summary(nb), resources=_RESOURCES)
    return str(body)


class _Prepared:
    """The exporter, once prepared while the notebook's last cell waits for its charts (in this process only)."""

    def __init__(self) -> None:
        self.exporter: Any = None

    def __call__(self) -> None:
        # A failure here is the export's to report: export_html builds its own exporter and fails there.
        with contextlib.suppress(Exception):
            self.exporter = html_exporter()


def build_report(
    database_url: str,
    out: Path,
    notebook: Path = NOTEBOOK,
    executed: Path | None = None,
    cell_timeout: int = 600,
    cache_dir: Path | None = None,
    render_processes: int | None = None,
    chart_format: str = CHART_FORMATS[0],
    kernel: bool = False,
) -> Path:
    """Execute the notebook and write its HTML; render_processes None: analysis.chart_workers.default_workers()."""
    import nbformat

    processes = _analysis("analysis.chart_workers").default_workers() if render_processes is None else render_processes
    prepared = _Prepared()
    nb = execute_notebook(notebook, database_url, cell_timeout, cache_dir, processes, chart_format, kernel, prepared)
    if executed is not None:
        nbformat.write(nb, executed)  # type: ignore[no-untyped-call]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(export_html(nb, prepared.exporter), encoding="utf-8")
    return out


def run(args: argparse.Namespace) -> int:
    if args.database_url is None:
        from app.config import Settings

        args.database_url = Settings().database_url
    started = time.perf_counter()
    missing = missing_dependency()
    if missing is not None:
        print(f"report: the analysis dependencies are not installed (no module {missing!r}); install them with "
              f"{INSTALL_HINT}", file=sys.stderr)  # fmt: skip
        return 2
    try:
        if not has_events(args.database_url):
            raise NothingToReport(f"{public_url(args.database_url)} holds no events yet")
    except NothingToReport as exc:
        print(f"report: nothing to report, no report written: {exc}", file=sys.stderr)
        return 1
    cache_dir = None if args.no_cache else (args.cache_dir or _analysis("analysis.cache").default_directory())
    try:
        build_report(
            args.database_url, args.out, args.notebook, args.executed, args.cell_timeout, cache_dir,
            args.render_processes, args.chart_format, args.kernel,
        )  # fmt: skip
    except ReportFailed as exc:
        print(f"report: a notebook cell failed, no report written:\n{exc}", file=sys.stderr)
        return 1
    print(f"report: wrote {args.out} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0
