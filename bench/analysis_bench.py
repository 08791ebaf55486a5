"""Benchmark of the historical analysis: the notebook report on N simulated events (target: 1 million events
in <= 60 s and <= 2 GB peak RSS on 2 cores), plus the simulator's write rate.

    python -m bench.analysis_bench [--events 1000000] [--runs 3] [--workdir DIR]

Simulates once into DIR/events-N.db (kept between runs of this script unless --fresh), then runs
`python -m app report` --runs times, sampling the resident memory of the whole process tree (the command
and its kernel) every 50 ms. Prints every run and the medians; exits 1 when a median misses its target.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = os.sysconf("SC_PAGE_SIZE")
TARGET_SECONDS = 60.0
TARGET_RSS_BYTES = 2 * 1024**3


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="simulate --workers")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "telemetry-analysis-bench")
    parser.add_argument("--fresh", action="store_true", help="simulate again even if the database exists")
    args = parser.parse_args(argv)

    args.workdir.mkdir(parents=True, exist_ok=True)
    db = args.workdir / f"events-{args.events}-{args.users}-{args.days}.db"
    url = f"sqlite:///{db}"
    python = sys.executable
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.1f}, python: {python}")
    if args.fresh or not db.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        seconds, peak, cpu = run_measured([
            python, "-m", "app", "simulate", "--events", str(args.events), "--users", str(args.users),
            "--days", str(args.days), "--workers", str(args.workers), "--database-url", url, "--quiet",
        ])  # fmt: skip
        print(f"simulate: {args.events:,} events in {seconds:.1f} s ({args.events / seconds:,.0f} events/s), "
              f"CPU {cpu:.1f} s, peak RSS {peak / 2**20:.0f} MiB, workers {args.workers}, "
              f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"database: {db} ({db.stat().st_size / 2**20:.0f} MiB)")

    times, peaks, cpus = [], [], []
    for run in range(1, args.runs + 1):
        out = args.workdir / "report.html"
        seconds, peak, cpu = run_measured([python, "-m", "app", "report", "--database-url", url, "--out", str(out)])
        times.append(seconds)
        peaks.append(peak)
        cpus.append(cpu)
        size = out.stat().st_size / 1024
        print(f"report run {run}: {seconds:.1f} s, CPU {cpu:.1f} s, peak RSS {peak / 2**20:.0f} MiB, "
              f"html {size:.0f} KiB, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    median_s, median_rss = statistics.median(times), statistics.median(peaks)
    ok = median_s <= TARGET_SECONDS and median_rss <= TARGET_RSS_BYTES
    print(f"report median over {len(times)} runs: {median_s:.1f} s (target {TARGET_SECONDS:.0f} s), "
          f"CPU {statistics.median(cpus):.1f} s, "
          f"peak RSS {median_rss / 2**20:.0f} MiB (target {TARGET_RSS_BYTES / 2**20:.0f} MiB): "
          f"{'OK' if ok else 'MISSED'}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
