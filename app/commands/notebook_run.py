"""Run a notebook's code cells in this process, in an IPython shell, and keep their outputs in the notebook as a
kernel would have sent them (streams, rich displays and their updates by display id, execute results, errors).

What `python -m app report` uses by default: a Jupyter kernel is a second process that imports IPython, zmq and
the kernel machinery and then everything the cells import, ~2 s on a 2-core machine before the first cell; here
the cells start at once. The shell is IPython's own (the same display machinery, formatters and tracebacks as
in Jupyter), so the notebook stays the report's source and runs unchanged in Jupyter.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class CellFailed(RuntimeError):
    """A cell raised: the message holds the cell's source and its traceback, as nbclient's CellExecutionError."""


class CellTimedOut(Exception):
    """Raised inside a cell that ran longer than its timeout (the shell reports it as the cell's error)."""


def _stamp() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class _Outputs:
    """The outputs of the cell running now, and every output shown under a display id so far (an update
    replaces all of them, in whichever cell they are)."""

    def __init__(self) -> None:
        self.current: list[Any] = []
        self.by_display_id: dict[str, list[Any]] = {}

    def stream(self, name: str, text: str) -> None:
        from nbformat.v4 import new_output

        last = self.current[-1] if self.current else None
        if last is not None and last.output_type == "stream" and last.name == name:
            last.text += text
        else:
            self.current.append(new_output("stream", name=name, text=text))  # type: ignore[no-untyped-call]

    def display(
        self, data: Mapping[str, Any], metadata: Mapping[str, Any] | None, transient: Any, update: bool
    ) -> None:
        from nbformat.v4 import new_output

        display_id = (transient or {}).get("display_id")
        if update:
            for output in self.by_display_id.get(display_id, []) if display_id else []:
                output.data, output.metadata = dict(data), dict(metadata or {})
            return
        output = new_output("display_data", data=dict(data), metadata=dict(metadata or {}))  # type: ignore[no-untyped-call]
        self.current.append(output)
        if display_id:
            self.by_display_id.setdefault(display_id, []).append(output)


class _Stream:
    """sys.stdout / sys.stderr during a cell: text goes to the cell's outputs."""

    def __init__(self, outputs: _Outputs, name: str) -> None:
        self._outputs, self.name = outputs, name

    def write(self, text: str) -> int:
        if text:
            self._outputs.stream(self.name, text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:
        return "utf-8"


def _shell(outputs: _Outputs) -> Any:
    """A fresh IPython shell (the singleton that IPython.display talks to) whose displays land in `outputs`."""
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from nbformat.v4 import new_output
    from traitlets.config import Config

    class Publisher(DisplayPublisher):
        def publish(self, data: Any, metadata: Any = None, source: Any = None, *, transient: Any = None,
                    update: bool = False, **_: Any) -> None:  # fmt: skip
            outputs.display(data, metadata, transient, update)

        def clear_output(self, wait: bool = False) -> None:
            outputs.current.clear()

    class ResultHook(DisplayHook):
        """The value of a cell's last expression as an execute_result, as ipykernel's display hook sends it."""

        def write_output_prompt(self) -> None:
            pass

        def write_format_data(self, format_dict: Any, md_dict: Any = None) -> None:
            outputs.current.append(
                new_output(  # type: ignore[no-untyped-call]
                    "execute_result", data=format_dict, metadata=md_dict or {}, execution_count=self.prompt_count
                )
            )

        def finish_displayhook(self) -> None:
            self._is_active = False

    class ReportShell(InteractiveShell):
        def _showtraceback(self, etype: Any, evalue: Any, stb: list[str]) -> None:
            outputs.current.append(
                new_output("error", ename=etype.__name__, evalue=str(evalue), traceback=stb)  # type: ignore[no-untyped-call]
            )

    InteractiveShell.clear_instance()
    config = Config()
    config.HistoryManager.enabled = False  # no history file: nothing of the report is written to ~/.ipython
    config.InteractiveShell.colors = "nocolor"  # tracebacks as plain text, for the report's error message
    return ReportShell.instance(
        config=config, display_pub_class=Publisher, displayhook_class=ResultHook, user_ns={"__name__": "__main__"}
    )


@contextmanager
def _environment(env: Mapping[str, str], cwd: Path) -> Iterator[None]:
    """The cells see `env` and `cwd` as a kernel started with them would; both are restored afterwards."""
    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


@contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """CellTimedOut raised in the cell after `seconds` (main thread only: signals need it; elsewhere, no limit).
    Python code is interrupted at once; a long call into C (a DuckDB query) at its return."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(_signum: int, _frame: Any) -> None:
        raise CellTimedOut(f"the cell ran longer than its {seconds:g} s timeout")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_notebook(nb: Any, env: Mapping[str, str], cwd: Path, cell_timeout: float | None = None) -> Any:
    """Execute every code cell of `nb` (an nbformat notebook, changed in place and returned) in order; stop at
    the first cell that raises, with CellFailed. Cell metadata get nbclient's execution timestamps."""
    outputs = _Outputs()
    shell = _shell(outputs)
    saved_streams = sys.stdout, sys.stderr
    try:
        with _environment(env, cwd):
            for cell in nb.cells:
                if cell.cell_type != "code":
                    continue
                outputs.current = []
                cell.outputs = outputs.current
                started = _stamp()
                sys.stdout, sys.stderr = _Stream(outputs, "stdout"), _Stream(outputs, "stderr")
                try:
                    with _time_limit(cell_timeout):
                        result = shell.run_cell(cell.source, store_history=True)
                finally:
                    sys.stdout, sys.stderr = saved_streams
                cell.outputs = outputs.current  # clear_output may have replaced the list's contents only
                cell.execution_count = shell.execution_count - 1
                cell.metadata["execution"] = {"shell.execute_reply.started": started, "shell.execute_reply": _stamp()}
                if not result.success:
                    raise CellFailed(_failure(cell))
    finally:
        sys.stdout, sys.stderr = saved_streams
        type(shell).clear_instance()
        _fresh_matplotlib()
    return nb


def _fresh_matplotlib() -> None:
    """pyplot's figures closed and rcParams back to matplotlib's start-up values, as the next notebook would find
    them in a fresh kernel (nothing to do if no cell imported matplotlib)."""
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
    if "matplotlib" in sys.modules:
        sys.modules["matplotlib"].rc_file_defaults()


def _failure(cell: Any) -> str:
    errors = [o for o in cell.outputs if o.output_type == "error"]
    if not errors:
        return f"An error occurred while executing the following cell:\n{cell.source}\n"
    error = errors[-1]
    return (
        f"An error occurred while executing the following cell:\n------------------\n{cell.source}\n"
        f"------------------\n\n" + "\n".join(error.traceback) + f"\n{error.ename}: {error.evalue}\n"
    )
