"""`python -m app report`: execute the analysis notebook against a database and export it as one
self-contained HTML file (figures embedded, code hidden)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "telemetry_analysis.ipynb"
TEMPLATES = ROOT / "notebooks" / "report_template"
KERNEL = "python3"  # the kernel of the Python running this command (ipykernel installed beside it)


class ReportFailed(RuntimeError):
    """A notebook cell raised: the report would be incomplete or wrong, so none is written."""


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "report", help="run the analysis notebook and export a self-contained HTML report"
    )
    parser.add_argument("--database-url", default=None, help="database to analyse (default: TELEMETRY_DATABASE_URL)")
    parser.add_argument("--out", type=Path, default=Path("report.html"))
    parser.add_argument("--notebook", type=Path, default=NOTEBOOK)
    parser.add_argument("--executed", type=Path, default=None, help="also save the executed notebook here")
    parser.add_argument("--cell-timeout", type=int, default=600, help="seconds one cell may run")
    parser.set_defaults(handler=run)


def execute_notebook(notebook: Path, database_url: str, cell_timeout: int = 600) -> Any:
    """Run every cell in a fresh kernel; the database reaches the parameters cell through the environment."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(notebook, as_version=4)  # type: ignore[no-untyped-call]  # nbformat's API is untyped
    env = {**os.environ, "TELEMETRY_DATABASE_URL": database_url, "MPLBACKEND": "agg"}
    client = NotebookClient(nb, kernel_name=KERNEL, timeout=cell_timeout, resources={"metadata": {"path": str(ROOT)}})
    try:
        client.execute(env=env)
    except CellExecutionError as exc:
        raise ReportFailed(str(exc)) from exc
    return nb


def export_html(nb: Any) -> str:
    """HTML of the executed notebook without its code: outputs and markdown only."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(  # type: ignore[no-untyped-call]  # traitlets constructors are untyped
        template_name="telemetry_report",
        extra_template_basedirs=[str(TEMPLATES)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    body, _resources = exporter.from_notebook_node(nb, resources={"metadata": {"name": "Telemetry analysis"}})
    return str(body)


def build_report(
    database_url: str, out: Path, notebook: Path = NOTEBOOK, executed: Path | None = None, cell_timeout: int = 600
) -> Path:
    import nbformat

    nb = execute_notebook(notebook, database_url, cell_timeout)
    if executed is not None:
        nbformat.write(nb, executed)  # type: ignore[no-untyped-call]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(export_html(nb), encoding="utf-8")
    return out


def run(args: argparse.Namespace) -> int:
    if args.database_url is None:
        from app.config import Settings

        args.database_url = Settings().database_url
    started = time.perf_counter()
    try:
        build_report(args.database_url, args.out, args.notebook, args.executed, args.cell_timeout)
    except ReportFailed as exc:
        print(f"report: a notebook cell failed, no report written:\n{exc}", file=sys.stderr)
        return 1
    print(f"report: wrote {args.out} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0
