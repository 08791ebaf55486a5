"""Ingestion benchmark: the service against the framework's own ceiling and against raw SQLite.

In one run, side by side: the service (`python -m app serve`, default settings) and the reference app
(bench/reference_app.py: bare FastAPI, same request model, no I/O) are loaded with wrk over loopback at
32 connections, single-event POSTs and batches of 100, interleaved round by round; a raw sqlite3
executemany of the same rows gives the storage limit, and a plain ASGI app under the same server
(bench/floor_app.py) the HTTP server's own cost of a single POST, so that each app's share is the CPU
above it. Then the same batch load against a database already holding 5 million events, and the service's
RSS once it has ingested a million events.

Every figure is the median over the rounds. Server CPU time per event is reported too: on a shared
machine it stays meaningful when throughput does not. Ratios between servers are also given round by round
(median, min and max of each round's ratio): a noisy host moves every server in a round together.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONNECTIONS = 32
BATCH = 100
CLK_TCK = os.sysconf("SC_CLK_TCK")
WRITER_MODULE = b"app.commands.writer"  # the writer process's command line: python -m app.commands.writer

ACTIONS = ("page_view", "click", "signup", "purchase", "search", "logout")
SOURCES = ("web", "ios", "android")


def event_body(n: int) -> dict[str, Any]:
    """An event as a client sends it; no event_id, so the server makes a new one for every request."""
    return {
        "user_id": f"user-{n * 7919 % 5000}",
        "action": ACTIONS[n % len(ACTIONS)],
        "source": SOURCES[n % len(SOURCES)],
        "metadata": {"path": f"/page/{n % 40}", "ms": n % 997, "ab": n % 2 == 0},
    }


def lua_script(body: bytes) -> str:
    quoted = body.decode().replace("\\", "\\\\").replace("'", "\\'")
    return f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = \'{quoted}\'\n'


# -- processes ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """A server process on a free port; its stdout goes nowhere (writing it is still the server's work)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> None:
        self.name = name
        self.port = free_port()
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, *args, "--port", str(self.port)],
            cwd=cwd,
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"{self.name} exited: {err}")
            try:
                with urllib.request.urlopen(self.url + "/openapi.json", timeout=2):  # noqa: S310 (loopback)
                    return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready")

    def wait_workers(self, workers: int, queue_max: int, timeout_s: float = 60) -> None:
        """Until every worker has started: /readyz answers once the first one has, and connections made
        before the others listen would all stay on that one. Each worker adds its write queue's capacity to
        the summed gauge."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/metrics", timeout=2) as response:  # noqa: S310 (loopback)
                    text = response.read().decode()
            except OSError:
                text = ""
            capacity = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("telemetry_write_queue_capacity")
            )
            if capacity >= workers * queue_max:
                return
            time.sleep(0.1)
        print(f"  {self.name}: not every one of {workers} workers reported in {timeout_s:g} s", flush=True)

    def _status(self, key: str) -> int:
        """Summed over the process tree (workers and writer process included)."""
        total = 0
        for pid in [self.proc.pid, *_descendants(self.proc.pid)]:
            try:
                lines = Path(f"/proc/{pid}/status").read_text().splitlines()
            except OSError:
                continue
            total += next((int(line.split()[1]) * 1024 for line in lines if line.startswith(key + ":")), 0)
        return total

    def rss_bytes(self) -> int:
        return self._status("VmRSS")

    def peak_rss_bytes(self) -> int:
        return self._status("VmHWM")

    def cpu_s(self) -> float:
        """utime + stime of every thread of the server and of its live child processes (writer, workers)."""
        return self.cpu_split()[0]

    def cpu_split(self) -> tuple[float, float]:
        """(all processes, the writer process alone): CPU seconds, as cpu_s. The rest answers HTTP."""
        total = writer = 0
        for pid in [self.proc.pid, *_descendants(self.proc.pid)]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            ticks = int(fields[11]) + int(fields[12])
            total += ticks
            if WRITER_MODULE in command:
                writer += ticks
        return total / CLK_TCK, writer / CLK_TCK

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):  # children are listed under the thread that made them
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


# -- load ----------------------------------------------------------------------------------------------------


@dataclass
class Run:
    target: str
    load: str
    events_per_s: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx responses and socket errors
    cpu_us_per_event: float
    peak_rss_mb: float
    # The processes answering HTTP (the worker or workers), without the writer process: the event loop's
    # share, which bounds a single POST when the writer process has a core of its own.
    http_cpu_us_per_event: float = 0.0


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(match.group(1)) * _UNIT_MS[match.group(2)]


def run_wrk(server: Served, path: str, script: Path, duration_s: float, events_per_request: int, load: str) -> Run:
    cpu_before, writer_before = server.cpu_split()
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{CONNECTIONS}",
            f"-d{round(duration_s)}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(script),
            server.url + path,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cpu_after, writer_after = server.cpu_split()
    cpu = cpu_after - cpu_before
    http_cpu = cpu - (writer_after - writer_before)
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    seconds = _ms(re.search(r"requests in ([\d.]+\w+),", out).group(1)) / 1000  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(int(g) for g in sock.groups()) if sock else 0)
    good = requests - (int(non2xx.group(1)) if non2xx else 0)
    events = good * events_per_request
    return Run(
        target=server.name,
        load=load,
        events_per_s=events / seconds,
        requests_per_s=requests / seconds,
        p50_ms=p50,
        p99_ms=p99,
        errors=errors,
        cpu_us_per_event=cpu / max(events, 1) * 1e6,
        peak_rss_mb=server.peak_rss_bytes() / 2**20,
        http_cpu_us_per_event=http_cpu / max(events, 1) * 1e6,
    )


def median_run(runs: list[Run]) -> Run:
    first = runs[0]
    return Run(
        target=first.target,
        load=first.load,
        events_per_s=statistics.median(r.events_per_s for r in runs),
        requests_per_s=statistics.median(r.requests_per_s for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        errors=sum(r.errors for r in runs),
        cpu_us_per_event=statistics.median(r.cpu_us_per_event for r in runs),
        peak_rss_mb=max(r.peak_rss_mb for r in runs),
        http_cpu_us_per_event=statistics.median(r.http_cpu_us_per_event for r in runs),
    )


# -- raw SQLite --------------------------------------------------------------------------------------------


def service_rows(count: int, start: datetime) -> list[tuple[Any, ...]]:
    """The rows the service would write for `count` of the benchmark's events (same columns, same text)."""
    from app.json_codec import dump_json
    from app.utc_text import to_utc_text

    rows = []
    for n in range(count):
        body = event_body(n)
        moment = to_utc_text(start + timedelta(microseconds=n * 37))
        rows.append(
            (
                str(uuid.uuid4()),
                body["user_id"],
                body["action"],
                body["source"],
                moment,
                moment,
                None,
                dump_json(body["metadata"]),
            )
        )
    return rows


INSERT = (
    "INSERT INTO events (event_id, user_id, action, source, timestamp, received_at, sent_at, metadata) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING"
)


def raw_executemany(folder: Path, rows_per_transaction: int, total: int = 200_000) -> float:
    """Events/s of sqlite3 executemany into the service's schema, synchronous=FULL, one commit per chunk."""
    from app.repository.sqlite import open_database

    path = folder / f"raw-{rows_per_transaction}.db"
    conn = open_database(path, synchronous="FULL")
    rows = service_rows(total, datetime.now(UTC))
    started = time.perf_counter()
    for i in range(0, total, rows_per_transaction):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT, rows[i : i + rows_per_transaction])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return total / elapsed


def prefill(path: Path, count: int) -> int:
    """A database holding at least `count` events (kept between runs: building it takes minutes)."""
    from app.repository.sqlite import open_database

    open_database(path).close()  # the service's schema, recorded version and WAL mode
    conn = sqlite3.connect(path, isolation_level=None)
    have = int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])
    if have < count:
        print(f"  prefilling {path} from {have:,} to {count:,} events (kept for later runs)...", flush=True)
        # Loading, not measuring: no journal, no fsync, a large cache; back to WAL at the end.
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -1000000")
        start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=have)
        chunk = 250_000
        for offset in range(have, count, chunk):
            rows = service_rows(min(chunk, count - offset), start + timedelta(seconds=offset - have))
            conn.execute("BEGIN")
            conn.executemany(INSERT, rows)
            conn.execute("COMMIT")
            print(f"    {offset + len(rows):,}", flush=True)
        conn.execute("PRAGMA journal_mode = WAL")
        have = int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])
    conn.close()
    return have


# -- the benchmark ------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout.split("\n")[0]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": wrk_version.strip(),
        "load_average_at_start": os.getloadavg(),
    }


@dataclass
class Variant:
    """Another service configuration, loaded in the same rounds: its env, serve arguments, source tree."""

    name: str
    env: dict[str, str]
    args: list[str]
    tree: Path = ROOT


def service(db: Path, variant: Variant | None = None) -> Served:
    # Default settings; only the database file is the benchmark's own (and a variant's env and arguments).
    v = variant or Variant("service", {}, [])
    served = Served(
        v.name,
        ["-m", "app", "serve", *v.args],
        env={"TELEMETRY_DATABASE_URL": f"sqlite:///{db}", **v.env},
        cwd=v.tree,
    )
    if "--workers" in v.args:
        workers = int(v.args[v.args.index("--workers") + 1])
        served.wait_workers(workers, int(v.env.get("TELEMETRY_WRITE_QUEUE_MAX", "10000")))
    return served


def parse_variant(text: str) -> Variant:
    """'NAME;ENV=VALUE ENV2=VALUE;--serve --args[;TREE]' (TREE: another checkout, e.g. the code before a change)."""
    name, env_text, args_text, *tree = text.split(";")
    env = dict(item.split("=", 1) for item in env_text.split())
    return Variant(name, env, args_text.split(), Path(tree[0]).resolve() if tree else ROOT)


SPY_ALL = ("-t", "-s")  # every thread, and the child processes (writer, workers)


def profile(server: Served, seconds: float, out: Path) -> None:
    """Sample the service with py-spy while it is under load (run alongside a wrk run)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    subprocess.Popen(
        [py_spy, "record", "-p", str(server.proc.pid), "-d", str(int(seconds)), "-f", "raw", "-o", str(out), *SPY_ALL],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def top_frames(raw: Path, n: int = 15) -> dict[str, list[tuple[str, float]]]:
    """Own and inclusive share of samples per frame, from py-spy's raw (collapsed stacks) output."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = [re.sub(r" \(.*/(site-packages|lib/python[\d.]+)/", " (", f) for f in stack.split(";")[1:]]
        if not frames:
            continue
        total += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count

    def share(counts: dict[str, int], top: int) -> list[tuple[str, float]]:
        return [(f, round(100 * c / total, 1)) for f, c in sorted(counts.items(), key=lambda kv: -kv[1])[:top]]

    return {"own_pct": share(own, n), "inclusive_pct": share(inclusive, 4 * n)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_bench", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds of each wrk run")
    parser.add_argument("--big-events", type=int, default=5_000_000, help="events already stored (0: skip)")
    parser.add_argument("--rss-events", type=int, default=1_000_000, help="events ingested before RSS (0: skip)")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "bench", help="where the prefilled db is kept")
    parser.add_argument("--profile", type=Path, default=None, help="write py-spy samples of the service here")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the results as a Markdown section")
    parser.add_argument("--raw-events", type=int, default=200_000, help="rows the raw sqlite3 baseline writes")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="'NAME;ENV=VALUE ...;--serve-args[;TREE]': another service configuration, loaded in the same rounds",
    )
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (make bench does it when run as root)")

    info = machine()
    print(f"machine: {json.dumps(info)}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="telemetry-bench-"))
    scripts = {
        "single": work / "single.lua",
        "batch100": work / "batch100.lua",
    }
    scripts["single"].write_text(lua_script(json.dumps(event_body(1)).encode()))
    scripts["batch100"].write_text(lua_script(json.dumps({"events": [event_body(n) for n in range(BATCH)]}).encode()))
    loads = {"single": ("/v1/events", 1), "batch100": ("/v1/events/batch", BATCH)}
    runs: dict[tuple[str, str], list[Run]] = {}
    results: dict[str, Any] = {"machine": info}
    try:
        reference = Served("reference", ["-m", "bench.reference_app"])
        floor = Served("floor", ["-m", "bench.floor_app"])  # single POSTs only: the HTTP server's own cost
        svc = service(work / "empty.db")
        variants = []
        for number, text in enumerate(args.variant):
            variants.append(service(work / f"variant-{number}.db", parse_variant(text)))
        try:
            for round_no in range(args.rounds):
                for load, (path, per_request) in loads.items():
                    for server in (reference, *([floor] if load == "single" else []), svc, *variants):
                        if args.profile and round_no == args.rounds - 1 and server is svc:
                            profile(server, args.duration - 1, args.profile.with_suffix(f".{load}.txt"))
                        run = run_wrk(server, path, scripts[load], args.duration, per_request, load)
                        runs.setdefault((server.name, load), []).append(run)
                        print(f"  round {round_no + 1} {server.name:9} {load:8} {_fmt(run)}", flush=True)
            if args.rss_events:
                ingested = sum(r.events_per_s * args.duration for r in runs[("service", "batch100")])
                ingested += sum(r.events_per_s * args.duration for r in runs[("service", "single")])
                while ingested < args.rss_events:
                    run = run_wrk(svc, "/v1/events/batch", scripts["batch100"], args.duration, BATCH, "batch100")
                    ingested += run.events_per_s * args.duration
                stored = _count(work / "empty.db")
                results["rss_after_ingest"] = {
                    "events_ingested_by_this_process": stored,
                    "rss_mb": round(svc.rss_bytes() / 2**20, 1),
                    "peak_rss_mb": round(svc.peak_rss_bytes() / 2**20, 1),
                }
                print(f"  service RSS after {stored:,} events: {results['rss_after_ingest']}", flush=True)
        finally:
            svc.stop()
            reference.stop()
            floor.stop()
            for variant in variants:
                variant.stop()

        medians = {f"{t}/{load}": median_run(r) for (t, load), r in runs.items()}
        results["medians"] = {k: asdict(v) for k, v in medians.items()}
        # Each round's events/s, in round order: servers loaded in the same round saw the same machine.
        results["rounds"] = {f"{t}/{load}": [r.events_per_s for r in rs] for (t, load), rs in runs.items()}
        print("  raw sqlite3 executemany (synchronous=FULL)...", flush=True)
        raw = {size: raw_executemany(work, size, args.raw_events) for size in (BATCH, 2000)}
        results["raw_executemany_events_per_s"] = {f"{k}_rows_per_commit": round(v) for k, v in raw.items()}

        if args.big_events:
            args.data.mkdir(parents=True, exist_ok=True)
            big_db = args.data / "prefilled.db"
            stored_before = prefill(big_db, args.big_events)
            big = service(big_db)
            big_runs: list[Run] = []
            empty_runs: list[Run] = []
            empty_svc = service(work / "empty-again.db")
            try:
                for round_no in range(args.rounds):
                    for server, into in ((empty_svc, empty_runs), (big, big_runs)):
                        run = run_wrk(server, "/v1/events/batch", scripts["batch100"], args.duration, BATCH, "batch100")
                        into.append(run)
                        label = "empty db" if server is empty_svc else f"{stored_before:,} stored"
                        print(f"  round {round_no + 1} service  batch100 {label:16} {_fmt(run)}", flush=True)
            finally:
                big.stop()
                empty_svc.stop()
            results["full_db"] = {
                "events_stored_before": stored_before,
                "empty": asdict(median_run(empty_runs)),
                "full": asdict(median_run(big_runs)),
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)

    results["ratios"] = ratios(results)
    if args.profile:
        results["profile"] = {
            load: top_frames(args.profile.with_suffix(f".{load}.txt"))
            for load in loads
            if args.profile.with_suffix(f".{load}.txt").exists()
        }
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.markdown:
        args.markdown.write_text(markdown(results, args))
    return results


def _count(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    finally:
        conn.close()


def round_ratios(rounds: dict[str, list[float]], numerator: str, denominator: str) -> list[float]:
    """numerator's events/s over denominator's, round by round (the two were loaded in the same round)."""
    return [a / b for a, b in zip(rounds.get(numerator, []), rounds.get(denominator, []), strict=False) if b]


def _by_round(out: dict[str, Any], name: str, values: list[float]) -> None:
    """The median of the rounds' ratios and their range: on a noisy host the median of each server's own
    rounds can pair one server's good round with another's bad one; the ratio within a round cannot."""
    if values:
        out[f"{name}_by_round_median"] = round(statistics.median(values), 3)
        out[f"{name}_by_round_min"] = round(min(values), 3)
        out[f"{name}_by_round_max"] = round(max(values), 3)


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    m = results["medians"]
    svc_single, ref_single = m["service/single"], m["reference/single"]
    svc_batch, ref_batch = m["service/batch100"], m["reference/batch100"]
    raw = results["raw_executemany_events_per_s"]
    out: dict[str, Any] = {
        "single_throughput_vs_reference": round(svc_single["events_per_s"] / ref_single["events_per_s"], 3),
        "single_p99_vs_reference": round(svc_single["p99_ms"] / ref_single["p99_ms"], 3),
        "single_cpu_per_event_vs_reference": round(svc_single["cpu_us_per_event"] / ref_single["cpu_us_per_event"], 3),
        "batch_events_per_s": round(svc_batch["events_per_s"]),
        "batch_throughput_vs_reference": round(svc_batch["events_per_s"] / ref_batch["events_per_s"], 3),
        "batch_vs_raw_executemany_100": round(svc_batch["events_per_s"] / raw["100_rows_per_commit"], 3),
        "batch_vs_raw_executemany_2000": round(svc_batch["events_per_s"] / raw["2000_rows_per_commit"], 3),
    }
    rounds = results.get("rounds", {})
    _by_round(out, "single_vs_reference", round_ratios(rounds, "service/single", "reference/single"))
    floor = m.get("floor/single")
    if floor is not None:
        # CPU a request above the HTTP server's own floor: the service's event loop (its writer process
        # apart) against the reference's FastAPI route. Below 1: the service's app costs its loop less.
        out["floor_single_cpu_us_per_event"] = round(floor["cpu_us_per_event"], 1)
        above_reference = ref_single["cpu_us_per_event"] - floor["cpu_us_per_event"]
        above_service = svc_single["http_cpu_us_per_event"] - floor["cpu_us_per_event"]
        if above_reference > 0:
            out["single_http_cpu_above_floor_vs_reference"] = round(above_service / above_reference, 3)
    for key, run in m.items():
        name, _, load = key.partition("/")
        if name in ("service", "reference", "floor"):
            continue
        _by_round(out, f"{name}_{load}_vs_service", round_ratios(rounds, key, f"service/{load}"))
        if load == "single":
            out[f"{name}_single_throughput_vs_reference"] = round(run["events_per_s"] / ref_single["events_per_s"], 3)
            out[f"{name}_single_p99_vs_reference"] = round(run["p99_ms"] / ref_single["p99_ms"], 3)
        else:
            out[f"{name}_batch_vs_raw_executemany_100"] = round(run["events_per_s"] / raw["100_rows_per_commit"], 3)
    if "full_db" in results:
        full = results["full_db"]
        out["full_db_vs_empty"] = round(full["full"]["events_per_s"] / full["empty"]["events_per_s"], 3)
        # The same comparison in CPU per event (empty / full): what contention from other processes moves least.
        out["full_db_vs_empty_by_cpu_per_event"] = round(
            full["empty"]["cpu_us_per_event"] / full["full"]["cpu_us_per_event"], 3
        )
    if "rss_after_ingest" in results:
        out["rss_mb_after_ingest"] = results["rss_after_ingest"]["rss_mb"]
    return out


def _fmt(run: Run) -> str:
    return (
        f"{run.events_per_s:>9,.0f} events/s  p50 {run.p50_ms:7.2f} ms  p99 {run.p99_ms:7.2f} ms  "
        f"cpu {run.cpu_us_per_event:7.1f} us/event (http {run.http_cpu_us_per_event:6.1f})  "
        f"peak RSS {run.peak_rss_mb:6.1f} MB  errors {run.errors}"
    )


def report(results: dict[str, Any]) -> None:
    print("\nIngestion benchmark: medians")
    for name, run in results["medians"].items():
        print(f"  {name:20} {_fmt(Run(**run))}")
    for key, value in results["raw_executemany_events_per_s"].items():
        print(f"  raw executemany {key:20} {value:>9,} events/s")
    if "full_db" in results:
        full = results["full_db"]
        print(f"  batch100, empty db       {_fmt(Run(**full['empty']))}")
        print(f"  batch100, {full['events_stored_before']:,} stored {_fmt(Run(**full['full']))}")
    if "rss_after_ingest" in results:
        print(f"  RSS after ingest: {results['rss_after_ingest']}")
    print("Ratios:")
    for key, value in results["ratios"].items():
        print(f"  {key:40} {value}")
    for load, frames in results.get("profile", {}).items():
        print(f"Profile of the service, {load} (py-spy, % of samples):")
        for frame, pct in frames["own_pct"]:
            print(f"  own {pct:5.1f}%  {frame}")


TARGETS = {
    "single_throughput_vs_reference": (">=", 0.75),
    "single_p99_vs_reference": ("<=", 2.0),
    "batch_events_per_s": (">=", 25_000),
    "batch_vs_raw_executemany_100": (">=", 0.5),
    "batch_vs_raw_executemany_2000": (">=", 0.5),
    "full_db_vs_empty": (">=", 0.8),
    "rss_mb_after_ingest": ("<=", 200),
}


def markdown(results: dict[str, Any], args: argparse.Namespace) -> str:
    """The results as Markdown tables, for docs/benchmarks.md."""
    m = results["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB RAM, Linux {m['kernel']}, "
        f"Python {m['python']}, {m['wrk']}. Load average when the run started: "
        f"{', '.join(f'{x:.2f}' for x in m['load_average_at_start'])}.",
        "",
        f"wrk: 1 thread, {CONNECTIONS} connections, {args.duration} s per run, {args.rounds} rounds "
        "(reference and service alternate within each round); medians.",
        "",
        "| target / load | events/s | requests/s | p50 ms | p99 ms | server CPU µs/event | of which HTTP processes "
        "| peak RSS MB | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = dict(results["medians"])
    if "full_db" in results:
        rows["service/batch100, empty db (2nd run)"] = results["full_db"]["empty"]
        rows[f"service/batch100, {results['full_db']['events_stored_before']:,} events stored"] = results["full_db"][
            "full"
        ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['events_per_s']:,.0f} | {r['requests_per_s']:,.0f} | {r['p50_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {r['cpu_us_per_event']:.1f} | {r['http_cpu_us_per_event']:.1f} | "
            f"{r['peak_rss_mb']:.1f} | {r['errors']} |"
        )
    lines += ["", "| raw sqlite3 executemany, synchronous=FULL | events/s |", "|---|---:|"]
    for key, value in results["raw_executemany_events_per_s"].items():
        lines.append(f"| {key.replace('_', ' ')} | {value:,} |")
    if "rss_after_ingest" in results:
        rss = results["rss_after_ingest"]
        lines += [
            "",
            f"Service RSS after ingesting {rss['events_ingested_by_this_process']:,} events: {rss['rss_mb']} MB "
            f"(peak {rss['peak_rss_mb']} MB).",
        ]
    lines += ["", "| ratio | measured | target | met |", "|---|---:|---:|:---:|"]
    for key, value in results["ratios"].items():
        op, bound = TARGETS.get(key, ("", None))
        met = "" if bound is None else ("yes" if (value >= bound if op == ">=" else value <= bound) else "**no**")
        lines.append(f"| {key} | {value:,} | {op} {bound if bound is not None else ''} | {met} |")
    for load, frames in results.get("profile", {}).items():
        lines += ["", f"py-spy profile of the service under the {load} load (% of samples, all threads):", ""]
        lines += ["| own % | frame |", "|---:|---|"]
        lines += [f"| {pct} | `{frame}` |" for frame, pct in frames["own_pct"]]
        lines += ["", "| inclusive % | frame |", "|---:|---|"]
        lines += [f"| {pct} | `{frame}` |" for frame, pct in frames["inclusive_pct"] if "app/" in frame]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
