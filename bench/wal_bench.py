"""WAL benchmark: how large telemetry.db-wal grows under sustained batch load, and what bounding it costs.

The service (`python -m app serve`, SQLite, default settings) is loaded with wrk over loopback: 16
connections posting batches of 50 for --duration seconds (90 by default), while a few readers run
GET /v1/stats in a loop (readers hold snapshots, which is what keeps a checkpoint from completing).
The WAL file's size is sampled every 50 ms. The run is done twice, interleaved round by round: with
the writer's checkpoint on (the default) and off (TELEMETRY_SQLITE_WAL_CHECKPOINT_BYTES=0), so the
throughput ratio comes from one machine state. Every figure is the median over the rounds; the WAL
peak is the largest seen.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.ingest_bench import Served, _ms, event_body, lua_script

CONNECTIONS = 16
BATCH = 50
READERS = 2
VARIANTS: dict[str, dict[str, str]] = {
    "bounded": {},  # the defaults: the writer checkpoints past sqlite_wal_checkpoint_bytes
    "unbounded": {"TELEMETRY_SQLITE_WAL_CHECKPOINT_BYTES": "0"},
}


class WalSampler:
    """Samples the size of the -wal file beside the database until stopped; keeps the peak."""

    def __init__(self, db: Path, every_s: float = 0.05) -> None:
        self.wal = db.with_name(db.name + "-wal")
        self.peak = 0
        self.samples: list[int] = []
        self._every = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                size = self.wal.stat().st_size
            except FileNotFoundError:
                size = 0
            self.samples.append(size)
            self.peak = max(self.peak, size)

    def __enter__(self) -> WalSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class StatsReaders:
    """Threads running GET /v1/stats back to back: long reads holding WAL snapshots."""

    def __init__(self, url: str, count: int) -> None:
        self.url = url + "/v1/stats?bucket=day"
        self.reads = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=30):  # noqa: S310 (loopback)
                    self.reads += 1
            except OSError:
                time.sleep(0.05)

    def __enter__(self) -> StatsReaders:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(35)


def one_run(variant: str, duration_s: int, readers: int, script: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wal-bench-") as tmp:
        db = Path(tmp) / "telemetry.db"
        env = {"TELEMETRY_DATABASE_URL": f"sqlite:///{db}", "TELEMETRY_LOG_LEVEL": "WARNING", **VARIANTS[variant]}
        server = Served(variant, ["-m", "app", "serve"], env)
        try:
            cpu_before = server.cpu_s()
            with WalSampler(db) as sampler, StatsReaders(server.url, readers) as stats:
                out = subprocess.run(
                    [
                        *("wrk", "-t1", f"-c{CONNECTIONS}", f"-d{duration_s}s", "--timeout", "10s", "--latency"),
                        *("-s", str(script), server.url + "/v1/events/batch"),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            cpu = server.cpu_s() - cpu_before
        finally:
            server.stop()
        requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
        seconds = _ms(re.search(r"requests in ([\d.]+\w+),", out).group(1)) / 1000  # type: ignore[union-attr]
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        bad = int(non2xx.group(1)) if non2xx else 0
        events = (requests - bad) * BATCH
        return {
            "variant": variant,
            "events_per_s": events / seconds,
            "p99_ms": _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
            "non_2xx": bad,
            "wal_peak_mib": sampler.peak / 2**20,
            "wal_median_mib": statistics.median(sampler.samples or [0]) / 2**20,
            "cpu_us_per_event": cpu / max(events, 1) * 1e6,
            "stats_reads": stats.reads,
        }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--wal-duration", type=int, default=90, help="seconds of each wrk run")
    parser.add_argument("--wal-rounds", type=int, default=1)
    parser.add_argument("--wal-readers", type=int, default=READERS, help="concurrent GET /v1/stats loops")
    parser.add_argument("--wal-variant", action="append", choices=sorted(VARIANTS), help="default: both")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    variants = args.wal_variant or list(VARIANTS)
    body = json.dumps({"events": [event_body(n) for n in range(BATCH)]}).encode()
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "batch.lua"
        script.write_text(lua_script(body))
        for _ in range(args.wal_rounds):
            for variant in variants:
                run = one_run(variant, args.wal_duration, args.wal_readers, script)
                print(json.dumps(run), flush=True)
                runs[variant].append(run)
    summary: dict[str, Any] = {
        v: {
            "events_per_s": statistics.median(r["events_per_s"] for r in rs),
            "wal_peak_mib": max(r["wal_peak_mib"] for r in rs),
            "cpu_us_per_event": statistics.median(r["cpu_us_per_event"] for r in rs),
            "p99_ms": statistics.median(r["p99_ms"] for r in rs),
        }
        for v, rs in runs.items()
    }
    if {"bounded", "unbounded"} <= set(summary):
        summary["throughput_ratio"] = summary["bounded"]["events_per_s"] / summary["unbounded"]["events_per_s"]
    print(json.dumps({"wal": summary}, indent=2))
    return {"wal": summary}


if __name__ == "__main__":
    main()
