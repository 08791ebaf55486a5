"""The notebook end to end: executed as `python -m app report` runs it against simulated data, exported as HTML,
and read as a product owner would read it (summary first, header, tables and wording), also in headless Chromium.

Any cell error fails the report (and so this test): the notebook cannot silently rot. One report is built
for the module and every rule is checked on it; the data end on a Wednesday so the last week is partial.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from app.commands.report import ReportFailed, build_report, execute_notebook
from app.repository.sqlite import SqliteEventRepository
from app.simulation import SimulationParams
from tests.integration.analysis_support import simulate_into

ROOT = Path(__file__).resolve().parents[2]
HEADER_FIELDS = ("Database", "Events", "Time range", "Generated at", "Package version")


class ReportPage(HTMLParser):
    """What a reader sees: headings and text in order, every table's cells, every image's attributes."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tables: list[list[list[tuple[str, str]]]] = []  # table -> row -> (tag, text) per cell
        self.images: list[dict[str, str]] = []
        self.svgs: list[dict[str, str]] = []
        self.header: dict[str, str] = {}
        self._cell: list[str] | None = None
        self._cell_tag = ""
        self._term: str | None = None
        self._in_dd = False
        self._dd: list[str] = []
        self._skip = 0
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag in {"style", "script"}:
            self._skip += 1
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in {"td", "th"}:
            self._cell, self._cell_tag = [], tag
        elif tag == "img":
            self.images.append(values)
        elif tag == "svg":
            self.svgs.append(values)
        elif tag == "dt":
            self._term = ""
        elif tag == "dd":
            self._in_dd, self._dd = True, []

    def handle_endtag(self, tag: str) -> None:
        if tag in {"style", "script"}:
            self._skip -= 1
        elif tag in {"td", "th"} and self._cell is not None and self.tables and self.tables[-1]:
            self.tables[-1][-1].append((self._cell_tag, "".join(self._cell).strip()))
            self._cell = None
        elif tag == "dd" and self._term is not None:
            self.header[self._term.strip()] = "".join(self._dd).strip()
            self._in_dd, self._term = False, None

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._in_dd:
            self._dd.append(data)
        elif self._term is not None:
            self._term += data

    @property
    def plain(self) -> str:
        return re.sub(r"\s+", " ", "".join(self.text))


def run_report(
    database_url: str, out: Path, *extra: str, cache_dir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m app report` with its cache in cache_dir (a fresh one next to out if None), never the
    user's own cache directory."""
    cache = [] if "--no-cache" in extra else ["--cache-dir", str(cache_dir or out.parent / "analysis-cache")]
    return subprocess.run(
        [sys.executable, "-m", "app", "report", "--database-url", database_url, "--out", str(out), *cache, *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("notebook") / "events.db"
    # 17 days from Monday 2026-01-05: the data end on Wednesday 2026-01-21, inside the third week.
    return simulate_into(path, SimulationParams(events=20_000, users=500, days=17, seed=2))


@pytest.fixture(scope="module")
def report(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("report")
    out, executed = folder / "report.html", folder / "executed.ipynb"
    done = run_report(database_url, out, "--executed", str(executed))
    assert done.returncode == 0, done.stderr
    return out, executed


@pytest.fixture(scope="module")
def page(report: tuple[Path, Path]) -> ReportPage:
    return ReportPage(report[0].read_text(encoding="utf-8"))


def test_report_command_runs_every_cell_and_writes_self_contained_html(report: tuple[Path, Path]) -> None:
    out, executed = report
    nb = nbformat.read(executed, as_version=4)
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = out.read_text(encoding="utf-8")
    assert len(re.findall(r'<img[^>]+src="data:image/svg\+xml;base64,', html)) >= 10  # figures embedded (SVG)
    assert not re.search(r'(src|href)="https?://', html)  # nothing fetched when the report opens
    assert "from analysis import" not in html
    assert "plt.subplots" not in html


def test_the_summary_comes_first_with_five_numbered_findings(page: ReportPage) -> None:
    text = page.plain
    assert text.index("Summary") < text.index("1. Data quality")
    summary = text[text.index("Summary") : text.index("1. Data quality")]
    findings = re.findall(r"\d+ %|\d[\d,]* events", summary)
    assert len(findings) >= 5, summary
    assert "20,000 events" in summary


def test_the_header_names_database_event_count_time_range_generation_time_and_version(
    page: ReportPage, database_url: str
) -> None:
    assert list(page.header)[: len(HEADER_FIELDS)] == list(HEADER_FIELDS)
    assert page.header["Database"] == database_url
    assert page.header["Events"] == "20,000"
    assert re.fullmatch(r"2026-01-05 \d\d:\d\d UTC to 2026-01-21 \d\d:\d\d UTC", page.header["Time range"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", page.header["Generated at"])
    assert page.header["Package version"] == "telemetry-mini-service 0.1.0"
    assert page.header["Simulated events"] == "100.0 % (metadata simulated: true)"  # simulate marks its events
    assert page.header["Cache"].startswith("cold cache (")  # the first run builds the engine's copy
    assert page.header["Cache"].endswith("built from the store, 20,000 events read")
    assert page.plain.index("Package version") < page.plain.index("Summary")


def test_tables_show_percentages_and_no_nan_index_or_utc_offset(page: ReportPage) -> None:
    cells = [(tag, text) for table in page.tables for row in table for tag, text in row]
    assert len(page.tables) >= 8
    assert not [text for _, text in cells if re.search(r"\bNaN\b|\bnan\b|\bNaT\b|\+00:00|\de[-+]\d\d", text)]
    for table in page.tables:
        header = table[0]
        assert all(text for _, text in header), header  # a pandas index leaves an empty corner cell
        assert all(tag == "td" for row in table[1:] for tag, _ in row)  # no row labels in <th>: no index
        for i, (_, name) in enumerate(header):
            if "share" in name or "conversion" in name or re.fullmatch(r"week \d+", name):
                values = [row[i][1] for row in table[1:] if len(row) > i]
                assert all(re.fullmatch(r"-?\d+\.\d %|–", v) for v in values), (name, values)
    assert "+00:00" not in page.plain


def test_a_peak_hour_is_named_only_when_it_stands_out_of_the_noise(page: ReportPage) -> None:
    text = page.plain
    # 500 simulated users over 17 days: the planted 20:00 evening peak is broad and noisy.
    tied = re.search(r"The busiest hours are ([\d:, –and]+) UTC: they are within (\d+\.\d) %", text)
    assert tied, text[text.index("Time.") : text.index("Time.") + 600]
    hours = set()  # runs of hours are written 18:00–23:00
    for first, last in re.findall(r"(\d\d):00(?:–(\d\d):00)?", tied.group(1)):
        hours.update(range(int(first), int(last or first) + 1))
    assert 20 in hours
    assert "no single peak hour can be named" in text
    assert "Traffic peaks at" not in text


def test_the_partial_last_week_is_shaded_and_said_to_be_partial(page: ReportPage) -> None:
    text = page.plain
    assert "Shaded: the week(s) from 2026-01-19 are only partly covered by the data" in text
    assert "Hatched: the week from 2026-01-19 is only partly covered" in text


def test_every_question_is_drawn_and_every_chart_has_its_title_as_alternative_text(page: ReportPage) -> None:
    assert len(page.images) >= 10
    alts = [image.get("alt", "") for image in page.images]
    assert all(alts), alts
    for question in (
        "Events per calendar week, top actions",  # trends, with the week before beside them in a table
        "Purchase amount per calendar week, each currency apart",
        "Users viewing pages per week, by device (top 3 devices, the rest as other)",  # filter + breakdown
        "Active users: daily, rolling 7-day and rolling 30-day",
        "Ordered funnel: users reaching each step within 14 days",
        "Conversion signup → purchase by entry-week cohort",
        "Share of entering users who reach each step, by source",
        "Share of each weekly cohort active again",
        "Retention curve: share of users active again, complete periods only",
        "Lifecycle: new, returning, resurrecting and dormant users per week",
        "Stickiness: users by number of active days in the week",
        "Session length · Events per session (up to 30)",
    ):
        assert question in alts, question


def test_report_renders_in_headless_chromium_with_titled_images_and_no_nan(
    report: tuple[Path, Path], tmp_path: Path
) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "chromium not on PATH (Debian package chromium, listed in .ci/apt-packages.txt)"
    command = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
        "--disable-background-networking", "--disable-component-update", f"--user-data-dir={tmp_path / 'chromium'}",
        "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=5000", "--dump-dom", report[0].as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = ReportPage(done.stdout)
    assert len(dom.images) >= 10
    untitled = [i for i in dom.images if not (i.get("alt") or i.get("title") or i.get("aria-label"))]
    untitled += [s for s in dom.svgs if not (s.get("aria-label") or s.get("title"))]
    assert untitled == []
    assert [text for table in dom.tables for row in table for _, text in row if "NaN" in text] == []
    assert "Summary" in dom.plain


def test_a_second_report_says_it_used_the_warm_cache_and_no_cache_says_so(
    database_url: str, report: tuple[Path, Path], tmp_path: Path
) -> None:
    first = ReportPage(report[0].read_text(encoding="utf-8"))
    again = tmp_path / "again.html"
    done = run_report(database_url, again, cache_dir=report[0].parent / "analysis-cache")
    assert done.returncode == 0, done.stderr
    warm = ReportPage(again.read_text(encoding="utf-8"))
    assert warm.header["Cache"].startswith("warm cache (")
    assert warm.header["Cache"].endswith("0 new event(s) read from the store")
    assert warm.header["Events"] == first.header["Events"]
    assert warm.tables == first.tables  # the same numbers from the copy as from the store
    done = run_report(database_url, tmp_path / "uncached.html", "--no-cache")
    assert done.returncode == 0, done.stderr
    assert ReportPage((tmp_path / "uncached.html").read_text(encoding="utf-8")).header["Cache"] == (
        "no cache: every event read from the store"
    )


def test_the_command_asks_the_store_before_the_kernel_without_loading_the_engine_or_the_charts(
    database_url: str,
) -> None:
    # What `report` runs in its own process before the kernel starts: the kernel loads these itself, so here
    # they would only be seconds of imports spent before it.
    script = (
        "import sys\n"
        "from app.commands import report\n"
        f"assert report.has_events({database_url!r})\n"
        "report._analysis('analysis.chart_workers').default_workers()\n"
        "report._analysis('analysis.cache').default_directory()\n"
        "heavy = ('duckdb', 'pandas', 'numpy', 'matplotlib', 'pyarrow', 'nbconvert')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


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
    executed = execute_notebook(notebook, "sqlite:///unused.db", kernel=True)  # report --kernel
    printed = executed.cells[0].outputs[0].text.strip()
    assert printed == sys.prefix  # the venv's prefix, not the base interpreter's


def test_the_export_is_prepared_while_the_last_cell_waits_for_the_chart_worker(
    database_url: str, tmp_path: Path
) -> None:
    """nbconvert is imported and its templates compiled inside finish_rendering(), before its wait for the
    worker's charts: the export after the cells no longer pays for it. A fresh process: the suite's may have
    imported nbconvert already."""
    probe = nbformat.v4.new_notebook()
    probe.cells = [
        nbformat.v4.new_code_cell(
            "import sys\n"
            "import matplotlib.pyplot as plt\n"
            "from analysis.charts import finish_rendering, render_in_background, show\n"
            "render_in_background(1)\n"
            "fig, ax = plt.subplots()\n"
            "ax.plot([0, 1], [0, 1])\n"
            "ax.set(title='Line', xlabel='x (unit)', ylabel='y (unit)')\n"
            "show(fig)\n"
            "print('before', 'nbconvert' in sys.modules)\n"
            "finish_rendering()\n"
            "print('after', 'nbconvert' in sys.modules)"
        )
    ]
    notebook, executed = tmp_path / "probe.ipynb", tmp_path / "executed.ipynb"
    nbformat.write(probe, notebook)
    done = run_report(database_url, tmp_path / "probe.html", "--notebook", str(notebook), "--executed", str(executed))
    assert done.returncode == 0, done.stderr
    printed = "".join(o.get("text", "") for o in nbformat.read(executed, as_version=4).cells[0].outputs)
    assert printed.split() == ["before", "False", "after", "True"]
    assert '<img alt="Line" src="data:image/svg+xml' in (tmp_path / "probe.html").read_text(
        encoding="utf-8"
    )  # drawn, placed


def test_an_empty_database_gives_one_line_and_no_report(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    SqliteEventRepository(path, checkpoint_interval_s=None).close()  # the schema, as `make run` leaves it
    out = tmp_path / "report.html"
    done = run_report(f"sqlite:///{path}", out)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [f"report: nothing to report, no report written: sqlite:///{path} holds no events yet"]
    assert not out.exists()


def test_a_missing_database_file_gives_one_line(tmp_path: Path) -> None:
    done = run_report(f"sqlite:///{tmp_path / 'nowhere.db'}", tmp_path / "report.html")
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1
    assert "no database file at" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_analysis_dependency_names_the_install_command(tmp_path: Path) -> None:
    # A module set to None in sys.modules cannot be imported: the interpreter behaves as if it were absent.
    script = (
        "import sys; sys.modules['nbformat'] = None\n"
        "from app.cli import main\n"
        f"raise SystemExit(main(['report', '--database-url', 'sqlite:///{tmp_path / 'x.db'}']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "report: the analysis dependencies are not installed (no module 'nbformat'); install them with "
        "make analysis-deps"
    ]


@pytest.mark.parametrize(("events", "users", "days"), [(3, 1, 1), (50, 10, 3)])
def test_a_small_database_still_renders_with_a_visible_warning(
    events: int, users: int, days: int, tmp_path: Path
) -> None:
    url = simulate_into(tmp_path / "small.db", SimulationParams(events=events, users=users, days=days, seed=3))
    out, executed = tmp_path / "report.html", tmp_path / "executed.ipynb"
    done = run_report(url, out, "--executed", str(executed))
    assert done.returncode == 0, done.stderr
    nb = nbformat.read(executed, as_version=4)
    assert [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"] == []
    small = ReportPage(out.read_text(encoding="utf-8"))
    text = small.plain
    assert "Conclusions are not reliable at this size." in text
    assert text.index("not reliable at this size") < text.index("Summary")  # seen before any finding
    assert small.header["Events"] == str(events)
    assert "Traffic peaks at" not in text  # no confident peak from a handful of events
    assert [t for table in small.tables for row in table for _, t in row if re.search(r"\bNaN\b|\bnan\b", t)] == []
