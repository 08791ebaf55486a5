"""Benchmark of the historical analysis: the notebook report on N simulated events (targets on 2 cores:
the whole report in <= 5 s at 1 million events and <= 10 s at 5 million, peak RSS <= 1 GiB, on SQLite and
on PostgreSQL), plus the simulator's write rate.

    python -m bench.analysis_bench [--events 1000000] [--runs 3] [--workdir DIR]
    python -m bench.analysis_bench --database-url postgresql://... [--mode package]

Simulates once into DIR/events-N.db (kept between runs of this script unless --fresh), or takes an existing
store with --database-url (bench.analysis_data copies a SQLite store into PostgreSQL). Then runs, --runs
times, `python -m app report` (--mode report) or every analysis question alone (--mode package:
bench.analysis_questions, no notebook kernel), sampling the resident memory of the whole process tree
every 50 ms, for each engine cache variant asked for (--cache off,cold,warm: no cache, an empty cache each
run, a filled one) and, in report mode, each --render-processes x --chart-format variant in turn inside
every run. Prints every run and the medians; exits 1 when a median misses its target.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = os.sysconf("SC_PAGE_SIZE")
TARGET_RSS_BYTES = 1024**3


def target_seconds(events: int) -> float:
    """5 s up to a million events, 10 s up to five million (the issue's two measured sizes)."""
    return 5.0 if events <= 1_000_000 else 10.0


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def tree_rss(root: int) -> int:
    """Resident bytes of a process and all its descendants, now."""
    tree, total, stack = _children(), 0, [root]
    while stack:
        pid = stack.pop()
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        stack.extend(tree.get(pid, []))
    return total


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_measured(command: list[str]) -> tuple[float, int, float]:
    """Wall seconds, peak tree RSS in bytes, and CPU seconds (user + system, the command and every process
    it waited for, so the kernel too) of one command. CPU time says what the work costs when other
    processes share the cores; wall time says what a user waits."""
    cpu_before = _children_cpu()
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(process.pid))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = process.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{stderr}")
    return seconds, peak, _children_cpu() - cpu_before


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="simulate --workers")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "telemetry-analysis-bench")
    parser.add_argument("--fresh", action="store_true", help="simulate again even if the database exists")
    parser.add_argument("--database-url", default=None, help="an existing store instead of a simulated one")
    parser.add_argument("--mode", choices=("report", "package"), default="report")
    parser.add_argument(
        "--cache", default="off,cold,warm",
        help="engine cache variants, in order (comma-separated): off (every event read from the store), cold "
        "(each run starts from an empty cache directory), warm (one untimed run fills it, then every run uses it)",
    )  # fmt: skip
    parser.add_argument(
        "--render-processes", default="default",
        help="report mode: chart rendering variants, in order (comma-separated): a number of processes for "
        "`report --render-processes` (0: in the kernel) or 'default'; each runs in turn inside every run",
    )  # fmt: skip
    parser.add_argument(
        "--chart-format", default="default",
        help="report mode: chart format variants, in order (comma-separated): svg, png (`report --chart-format`) "
        "or 'default'; combined with every --render-processes variant",
    )  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    args.workdir.mkdir(parents=True, exist_ok=True)
    db = args.workdir / f"events-{args.events}-{args.users}-{args.days}.db"
    url = args.database_url or f"sqlite:///{db}"
    python = sys.executable
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.1f}, python: {python}")
    if args.database_url:
        print(f"database: {args.database_url} ({args.events:,} events expected)")
    elif args.fresh or not db.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        seconds, peak, cpu = run_measured([
            python, "-m", "app", "simulate", "--events", str(args.events), "--users", str(args.users),
            "--days", str(args.days), "--workers", str(args.workers), "--database-url", url, "--quiet",
        ])  # fmt: skip
        print(f"simulate: {args.events:,} events in {seconds:.1f} s ({args.events / seconds:,.0f} events/s), "
              f"CPU {cpu:.1f} s, peak RSS {peak / 2**20:.0f} MiB, workers {args.workers}, "
              f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    if not args.database_url:
        print(f"database: {db} ({db.stat().st_size / 2**20:.0f} MiB)")

    out = args.workdir / "report.html"
    cache_dir = args.workdir / "analysis-cache"
    ok = True
    renders = [
        (render, fmt)
        for render in (args.render_processes.split(",") if args.mode == "report" else ["default"])
        for fmt in (args.chart_format.split(",") if args.mode == "report" else ["default"])
    ]
    for variant in args.cache.split(","):
        if variant not in ("off", "cold", "warm"):
            raise SystemExit(f"--cache: unknown variant {variant!r}")
        commands = {}
        for render, fmt in renders:
            if args.mode == "report":
                cache = ["--no-cache"] if variant == "off" else ["--cache-dir", str(cache_dir)]
                drawing = [] if render == "default" else ["--render-processes", str(int(render))]
                drawing += [] if fmt == "default" else ["--chart-format", fmt]
                commands[render, fmt] = [python, "-m", "app", "report", "--database-url", url, "--out", str(out),
                                         *cache, *drawing]  # fmt: skip
            else:
                cache = [] if variant == "off" else ["--cache", str(cache_dir)]
                commands[render, fmt] = [python, "-m", "bench.analysis_questions", url, *cache]
        shutil.rmtree(cache_dir, ignore_errors=True)
        if variant == "warm":
            run_measured(next(iter(commands.values())))  # fills the cache; not timed
        measured: dict[tuple[str, str], tuple[list[float], list[int], list[float]]] = {r: ([], [], []) for r in renders}
        renders_named = len({render for render, _ in renders}) > 1
        formats_named = len({fmt for _, fmt in renders}) > 1
        names = {
            (render, fmt): f"{args.mode} cache {variant}" + (f" render {render}" if renders_named else "")
            + (f" format {fmt}" if formats_named else "")
            for render, fmt in renders
        }  # fmt: skip
        for run in range(1, args.runs + 1):
            for render, command in commands.items():
                if variant == "cold":
                    shutil.rmtree(cache_dir, ignore_errors=True)
                seconds, peak, cpu = run_measured(command)
                times, peaks, cpus = measured[render]
                times.append(seconds)
                peaks.append(peak)
                cpus.append(cpu)
                size = f", html {out.stat().st_size / 1024:.0f} KiB" if args.mode == "report" else ""
                print(f"{names[render]} run {run}: {seconds:.1f} s, CPU {cpu:.1f} s, "
                      f"peak RSS {peak / 2**20:.0f} MiB{size}, load {os.getloadavg()[0]:.1f}")  # fmt: skip
        for render, (times, peaks, cpus) in measured.items():
            median_s, median_rss = statistics.median(times), statistics.median(peaks)
            target = target_seconds(args.events)
            met = median_s <= target and median_rss <= TARGET_RSS_BYTES
            ok = ok and met
            print(f"{names[render]}: median over {len(times)} runs {median_s:.1f} s (target {target:.0f} s), "
                  f"CPU {statistics.median(cpus):.1f} s, "
                  f"peak RSS {median_rss / 2**20:.0f} MiB (target {TARGET_RSS_BYTES / 2**20:.0f} MiB): "
                  f"{'OK' if met else 'MISSED'}")  # fmt: skip
    shutil.rmtree(cache_dir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
