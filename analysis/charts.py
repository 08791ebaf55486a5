"""Drawing rules every chart in the report follows, enforced where the figure is shown.

`show` refuses a chart without a title or without both axis labels, and embeds the image with its title
as alternative text, so the HTML report names every image. The other helpers shade periods the data do
not fully cover (so a partial week is not read as a drop) and label heatmap cells in a colour that
stays readable on both light and dark cells.

Drawing a figure is the report's largest cost (44 % of a warm run's samples with PNGs: matplotlib lays
out and draws every text twice for `bbox_inches="tight"`), and the notebook's kernel does it on one core.
`render_in_background()` moves it to worker processes: `show` then pickles the checked figure, displays
a placeholder with a display id, and `finish_rendering()` (the notebook's last cell) puts each image in its
place (nbclient applies the update to the earlier cell's output). A figure that cannot be pickled (a
lambda formatter, say) is drawn in the kernel as before. The formatters here are module-level classes so
that the report's own figures always pickle.

Charts are SVG by default (`use_chart_format("png")` for PNGs): with `svg.fonttype: none` matplotlib writes
each text as a <text> element instead of rasterising its glyphs, which costs a third less CPU a chart than Agg
and PNG encoding (docs/benchmarks.md). The hash salt is fixed and the date left out, so the same figure always
gives the same bytes, in the kernel or in a worker.
"""

from __future__ import annotations

import base64
import html
import io
import multiprocessing
import pickle
import re
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import matplotlib.dates as mdates
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.ticker import FuncFormatter, MaxNLocator

from analysis.chart_workers import default_workers

if TYPE_CHECKING:
    import pandas as pd  # imported where used: a chart worker process needs matplotlib alone

INCOMPLETE_LABEL = "partial period (data do not cover it fully)"


class UnlabelledChart(ValueError):
    """A chart would reach the reader without a title or an axis label."""


def _drawn_axes(fig: Figure) -> list[Axes]:
    return [ax for ax in fig.axes if ax.get_visible() and ax.axison and not hasattr(ax, "_colorbar")]


def _colorbars(fig: Figure) -> list[Any]:
    return [ax._colorbar for ax in fig.axes if hasattr(ax, "_colorbar")]


def check_labels(fig: Figure) -> str:
    """The figure's title text; raises UnlabelledChart if any plot lacks a title or an axis label."""
    problems = []
    for ax in _drawn_axes(fig):
        name = ax.get_title() or "an untitled plot"
        if not ax.get_title():
            problems.append("a plot has no title")
        if not ax.get_xlabel():
            problems.append(f"{name!r} has no x-axis label")
        if not ax.get_ylabel():
            problems.append(f"{name!r} has no y-axis label")
    for bar in _colorbars(fig):
        long_axis = bar.ax.yaxis if bar.orientation == "vertical" else bar.ax.xaxis
        if not long_axis.get_label_text():
            problems.append("a colour scale has no label (what the colour measures, with its unit)")
    if problems:
        raise UnlabelledChart("; ".join(problems))
    suptitle = fig.get_suptitle() if hasattr(fig, "get_suptitle") else ""
    titles = [ax.get_title() for ax in _drawn_axes(fig)]
    return suptitle or " · ".join(titles)


ChartFormat = Literal["svg", "png"]
CHART_FORMATS: tuple[ChartFormat, ...] = ("svg", "png")
MIME_TYPES: dict[ChartFormat, str] = {"svg": "image/svg+xml", "png": "image/png"}
# Texts as <text> elements; a fixed salt for the clip-path and marker ids (uuid4 by default) and no date in
# the metadata, so that rendering is deterministic.
_SVG_SETTINGS: dict[Any, Any] = {"svg.fonttype": "none", "svg.hashsalt": "telemetry-report"}  # rcParams keys
_SVG_PROLOGUE = re.compile(r"\A.*?(?=<svg\b)", re.DOTALL)  # the XML declaration and DOCTYPE
_SVG_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.DOTALL)


def png(fig: Figure, dpi: int = 90) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def svg(fig: Figure, title: str) -> str:
    """The figure as an SVG document whose <title> is the chart's title (no XML prologue or RDF metadata:
    it is embedded in a page)."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context(_SVG_SETTINGS):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = _SVG_METADATA.sub("", _SVG_PROLOGUE.sub("", buffer.getvalue(), count=1), count=1)
    opening = text.index(">") + 1
    return f"{text[:opening]}\n <title>{html.escape(title)}</title>{text[opening:]}"


def render(fig: Figure, fmt: ChartFormat, title: str) -> str:
    """The figure in the format's text form: base64 of the PNG, or the SVG document itself."""
    return svg(fig, title) if fmt == "svg" else png(fig)


def render_pickled(figure: bytes, fmt: ChartFormat, title: str) -> str:
    """render() of a figure pickled by BackgroundRenderer.submit (in the kernel, if a worker died)."""
    import matplotlib.pyplot as plt

    fig = pickle.loads(figure)  # noqa: S301  # bytes this module pickled in the parent process
    try:
        return render(fig, fmt, title)
    finally:
        plt.close(fig)


def _render_in_worker(figure: bytes, fmt: ChartFormat, title: str) -> str:
    """What a worker process runs: no display there, whatever backend its environment names."""
    import matplotlib

    matplotlib.use("agg")
    return render_pickled(figure, fmt, title)


def _image(data: str, fmt: ChartFormat, description: str) -> tuple[dict[str, str], dict[str, Any]]:
    mime = MIME_TYPES[fmt]
    return {mime: data, "text/plain": description}, {mime: {"alt": description}}


_format: ChartFormat = "svg"


def use_chart_format(fmt: str) -> None:
    """Draw the charts `show` displays from now on as "svg" (the default) or "png"."""
    global _format  # the kernel's one choice, like matplotlib's own rcParams
    if fmt not in CHART_FORMATS:
        raise ValueError(f"chart format {fmt!r}: one of {', '.join(CHART_FORMATS)}")
    _format = fmt


@dataclass(slots=True)
class _Pending:
    figure: bytes  # kept so that a broken worker costs a local rendering, not the chart
    fmt: ChartFormat
    future: Future[str]
    handle: Any  # IPython's DisplayHandle of the placeholder
    description: str


class BackgroundRenderer:
    """Rendering of pickled figures in worker processes (spawned: the kernel runs DuckDB's threads,
    which a fork would copy in an unknown state)."""

    def __init__(self, workers: int | None = None) -> None:
        count = workers if workers is not None else default_workers()
        self._pool = ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn"))
        self._pending: list[_Pending] = []
        # Start the workers (and their matplotlib import) now, while the kernel loads the data.
        for _ in range(count):
            self._pool.submit(int)

    def submit(self, fig: Figure, description: str) -> bool:
        """Queue the figure's rendering behind a placeholder; False if it cannot be pickled."""
        from IPython.display import display

        try:
            figure = pickle.dumps(fig)
        except (pickle.PicklingError, TypeError, AttributeError):
            return False
        future = self._pool.submit(_render_in_worker, figure, _format, description)
        handle = display(  # type: ignore[no-untyped-call]  # IPython's display is untyped
            {"text/plain": f"{description} (being drawn)"}, raw=True, display_id=True
        )
        self._pending.append(_Pending(figure, _format, future, handle, description))
        return True

    def finish(self) -> int:
        """Put every rendered chart in its placeholder's place; the number of charts placed."""
        placed = 0
        for item in self._pending:
            try:
                data = item.future.result()
            except Exception:  # a dead worker: draw this one here instead
                data = render_pickled(item.figure, item.fmt, item.description)
            bundle, metadata = _image(data, item.fmt, item.description)
            item.handle.update(bundle, metadata=metadata, raw=True)
            placed += 1
        self._pending.clear()
        self._pool.shutdown()
        return placed

    def discard(self) -> None:
        """Stop the workers; the charts still pending are dropped (their placeholders stay)."""
        self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


_background: BackgroundRenderer | None = None
_while_waiting: Callable[[], None] | None = None


def render_in_background(workers: int | None = None) -> None:
    """From now on `show` renders in worker processes until `finish_rendering()`."""
    global _background  # one renderer per kernel, like pyplot's own figure registry
    if _background is None:
        _background = BackgroundRenderer(workers)


def while_waiting(task: Callable[[], None] | None) -> None:
    """Work for finish_rendering to do once, before it waits for the background renderer's last charts: the
    caller's own next step, done while the worker draws (`python -m app report` prepares its HTML export
    there). Not run without a background renderer; None: nothing."""
    global _while_waiting
    _while_waiting = task


def finish_rendering() -> int:
    """Wait for the charts being drawn and put them in place (nothing to do without a background renderer)."""
    global _background, _while_waiting
    task, _while_waiting = _while_waiting, None
    if _background is None:
        return 0
    renderer, _background = _background, None
    if task is not None:
        task()
    return renderer.finish()


def reset() -> None:
    """This module as a fresh kernel has it: no background renderer (a notebook that failed before its last cell
    leaves one, its workers stopped here) and SVG charts. For notebooks run one after another in one process."""
    global _background, _format, _while_waiting
    _while_waiting = None
    renderer, _background = _background, None
    if renderer is not None:
        renderer.discard()
    _format = "svg"


def show(fig: Figure, alt: str | None = None) -> None:
    """Display a checked chart as an embedded image (SVG or PNG) whose alternative text is its title, then
    close it."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    title = check_labels(fig)
    description = alt or title
    if _background is not None and _background.submit(fig, description):
        plt.close(fig)
        return
    data = render(fig, _format, description)
    plt.close(fig)
    bundle, metadata = _image(data, _format, description)
    display(bundle, metadata=metadata, raw=True)  # type: ignore[no-untyped-call]  # IPython's display is untyped


@dataclass(frozen=True, slots=True)
class _PercentTick:
    digits: int

    def __call__(self, value: float, _pos: Any = None) -> str:
        return f"{100 * value:.{self.digits}f} %"


def _thousands_tick(value: float, _pos: Any = None) -> str:
    return f"{value:,.0f}"


def _number_tick(value: float, _pos: Any = None) -> str:
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:g}"


def percent_axis(axis: Any, digits: int = 0) -> None:
    """Tick labels of a 0..1 axis written as '60 %'."""
    axis.set_major_formatter(FuncFormatter(_PercentTick(digits)))


def thousands_axis(axis: Any) -> None:
    """A count axis: whole-number ticks only, thousands separated."""
    axis.set_major_locator(MaxNLocator(integer=True))
    axis.set_major_formatter(FuncFormatter(_thousands_tick))


def _date_number(moment: pd.Timestamp) -> float:
    """Where a moment sits on a matplotlib date axis."""
    return float(mdates.date2num(moment))  # type: ignore[no-untyped-call]  # matplotlib.dates is untyped


def shade_periods(ax: Axes, starts: Sequence[Any], length: pd.Timedelta, label: str = INCOMPLETE_LABEL) -> None:
    """Grey bands over the given periods, one legend entry for all of them."""
    import pandas as pd

    for i, start in enumerate(starts):
        begin = pd.Timestamp(start)
        # matplotlib converts dates on a date axis; its stubs only admit floats
        span = (_date_number(begin), _date_number(begin + length))
        ax.axvspan(*span, color="0.55", alpha=0.25, lw=0, label=label if i == 0 else None)


def cell_text_colour(image: AxesImage, value: float) -> str:
    """White on dark cells, near-black on light ones (relative luminance of the cell's colour)."""
    level = float(np.asarray(image.norm(np.asarray([value], dtype=float)), dtype=float)[0])
    red, green, blue, _alpha = image.cmap(level)
    luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
    return "white" if luminance < 0.5 else "#111111"


def annotate_cells(
    ax: Axes, image: AxesImage, values: np.ndarray, text: Callable[[float], str], fontsize: int = 8
) -> None:
    """Write each non-missing cell's value in a colour readable on that cell."""
    for (row, column), value in np.ndenumerate(values):
        if not np.isnan(value):
            colour = cell_text_colour(image, float(value))
            ax.text(column, row, text(float(value)), ha="center", va="center", fontsize=fontsize, color=colour)


def date_ticks(ax: Axes, moments: Sequence[Any], most: int = 8) -> None:
    """Ticks on the given days (every n-th one if there are more than `most`), labelled 2026-01-05: a
    weekly chart's ticks then fall on its week starts instead of matplotlib's own dates."""
    import pandas as pd

    stamps = [pd.Timestamp(m) for m in moments]
    if not stamps:
        return
    step = -(-len(stamps) // most)
    chosen = stamps[::step]
    ax.set_xticks([_date_number(s) for s in chosen], [f"{s:%Y-%m-%d}" for s in chosen])


def number_axis(axis: Any, ticks: int = 4) -> None:
    """A value axis with few ticks written with thousands separators ('25,000', never '2.5e4' or a run of
    overlapping digits)."""
    axis.set_major_locator(MaxNLocator(ticks))
    axis.set_major_formatter(FuncFormatter(_number_tick))


def date_axis(ax: Axes, most: int = 7) -> None:
    """A time axis with at most `most` dated ticks, so labels never run into each other."""
    locator = mdates.AutoDateLocator(maxticks=most)  # type: ignore[no-untyped-call]  # matplotlib.dates is untyped
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))  # type: ignore[no-untyped-call]
