"""PostgreSQL ingestion benchmark: batches of 100 through the service, against raw psycopg on the same rows.

    python -m bench.postgres_bench [--events 20000] [--clients 8] [--rounds 3] [--workers 1]

Each round:
  1. service: a fresh schema, `python -m app serve` on it, `--clients` threads POST /v1/events/batch with
     100 events each until all events are in; events/s = events / wall time from first send to last 200.
  2. raw executemany: a second fresh schema (same migration), one connection, for each batch of 100 the
     same rows by `executemany(INSERT ...)` and a COMMIT.
  3. raw COPY: a third fresh schema, the same rows by `COPY events FROM STDIN` per batch of 100, COMMIT each.
The ratio is service / raw for each raw method (target >= 0.5). Medians over the rounds are printed as a
Markdown table for docs/benchmarks.md. Schemas are dropped afterwards. Needs the PostgreSQL server
(TELEMETRY_BENCH_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg

from app.repository.postgres import migrate

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get("TELEMETRY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BATCH = 100
COLUMNS = 'event_id, user_id, action, source, "timestamp", received_at, sent_at, metadata, metadata_text'


@contextmanager
def fresh_schema(prefix: str) -> Iterator[str]:
    schema = f"bench_{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in ADMIN_URL else "?"
    try:
        yield f"{ADMIN_URL}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def make_events(n: int) -> list[dict[str, Any]]:
    """The same rows for every contender: what a web client would send, metadata included."""
    start = datetime(2026, 5, 1, tzinfo=UTC)
    actions = ["page_view", "click", "add_to_cart", "purchase", "search"]
    return [
        {
            "event_id": str(uuid.uuid4()),
            "user_id": f"user-{i % 997}",
            "action": actions[i % len(actions)],
            "source": "web" if i % 3 else "ios",
            "timestamp": (start + timedelta(milliseconds=37 * i)).isoformat().replace("+00:00", "Z"),
            "metadata": {"page": f"/products/{i % 211}", "session": f"s-{i // 20}", "ms": i % 1000},
        }
        for i in range(n)
    ]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_service(
    url: str, events: list[dict[str, Any]], clients: int, workers: int, cpu_per_event: list[float] | None = None
) -> float:
    """Events/s of the service; its CPU (every process: workers, writer) per event goes to `cpu_per_event`."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    # Default settings, INFO logs included (one JSON line per event), as in production; stdout is discarded.
    env.update({"TELEMETRY_DATABASE_URL": url, "PYTHONUNBUFFERED": "1"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port), "--workers", str(workers)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("service did not become ready")
            time.sleep(0.1)
        bodies = [json.dumps({"events": events[i : i + BATCH]}).encode() for i in range(0, len(events), BATCH)]
        # Warm-up: one batch of other events, so connection set-up is not part of the measurement.
        httpx.post(f"{base}/v1/events/batch", json={"events": make_events(BATCH)}, timeout=30)
        next_body = iter(bodies)
        lock = threading.Lock()
        failures: list[str] = []

        def client() -> None:
            with httpx.Client(base_url=base, timeout=60, headers={"content-type": "application/json"}) as http:
                while True:
                    with lock:
                        body = next(next_body, None)
                    if body is None:
                        return
                    response = http.post("/v1/events/batch", content=body)
                    if response.status_code != 200 or response.json()["accepted"] != BATCH:
                        failures.append(response.text[:200])

        threads = [threading.Thread(target=client) for _ in range(clients)]
        cpu_before = tree_cpu_s(proc.pid)
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        if cpu_per_event is not None:
            cpu_per_event.append((tree_cpu_s(proc.pid) - cpu_before) * 1e6 / len(events))
        if failures:
            raise RuntimeError(f"{len(failures)} batches not fully accepted: {failures[:3]}")
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM events").fetchone()
        if row is None or row[0] != len(events) + BATCH:
            raise RuntimeError(f"expected {len(events) + BATCH} rows, found {row}")
        return len(events) / elapsed
    finally:
        proc.terminate()
        proc.wait(30)


def tree_cpu_s(pid: int) -> float:
    """utime + stime of a process and its live descendants (uvicorn workers, a writer process)."""
    from bench.ingest_bench import CLK_TCK, _descendants

    total = 0
    for each in [pid, *_descendants(pid)]:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def raw_rows(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    now = datetime.now(UTC)
    rows = []
    for e in events:
        text = json.dumps(e["metadata"], separators=(",", ":"))
        ts = datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00"))
        rows.append((uuid.UUID(e["event_id"]), e["user_id"], e["action"], e["source"], ts, now, None, text, text))
    return rows


def run_executemany(url: str, events: list[dict[str, Any]]) -> float:
    sql = f"INSERT INTO events ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s)"
    with psycopg.connect(url) as conn:
        migrate(conn)
        started = time.perf_counter()
        rows = raw_rows(events)  # building the rows is part of the work, as it is for the service
        for i in range(0, len(rows), BATCH):
            with conn.cursor() as cur:
                cur.executemany(sql, rows[i : i + BATCH])
            conn.commit()
        return len(events) / (time.perf_counter() - started)


def run_copy(url: str, events: list[dict[str, Any]]) -> float:
    with psycopg.connect(url) as conn:
        migrate(conn)
        started = time.perf_counter()
        rows = raw_rows(events)
        for i in range(0, len(rows), BATCH):
            with conn.cursor() as cur, cur.copy(f"COPY events ({COLUMNS}) FROM STDIN") as copy:
                for row in rows[i : i + BATCH]:
                    copy.write_row(row)
            conn.commit()
        return len(events) / (time.perf_counter() - started)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.postgres_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes of the service")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    results: dict[str, list[float]] = {"service": [], "executemany": [], "copy": []}
    service_cpu: list[float] = []
    runners = {
        "service": lambda url, events: run_service(url, events, args.clients, args.workers, service_cpu),
        "executemany": run_executemany,
        "copy": run_copy,
    }
    order = list(runners)
    for n in range(args.rounds):
        events = make_events(args.events)
        # Each round in another order: whoever runs first (cold server, cold caches) changes from round to round.
        for name in order[n % len(order) :] + order[: n % len(order)]:
            with fresh_schema(name) as url:
                results[name].append(runners[name](url, events))
        print(
            f"round {n + 1}: "
            + ", ".join(f"{k} {v[-1]:,.0f} ev/s" for k, v in results.items())
            + f"; service CPU {service_cpu[-1]:.1f} us/event; load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )

    median = {k: statistics.median(v) for k, v in results.items()}
    # Same-run ratios: each round's service against that round's raw path, then the median of those.
    ratio = {
        name: statistics.median(s / r for s, r in zip(results["service"], results[name], strict=True))
        for name in ("executemany", "copy")
    }
    with psycopg.connect(ADMIN_URL) as conn:
        server_version = conn.execute("SHOW server_version").fetchone()
    print()
    print(
        f"PostgreSQL {server_version[0] if server_version else '?'}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; {args.events:,} events in batches of {BATCH}, {args.clients} clients, "
        f"{args.workers} service worker(s), median of {args.rounds} rounds; service CPU (every process of it) "
        f"{statistics.median(service_cpu):.1f} us/event; load average {os.getloadavg()[0]:.1f} at the end"
    )
    print()
    print("| path | events/s (median) | service / this (median of the rounds' ratios) |")
    print("|---|---:|---:|")
    print(f"| service: POST /v1/events/batch, group commit | {median['service']:,.0f} | 1.00 |")
    raw = {"executemany": "raw psycopg executemany, COMMIT per 100", "copy": "raw psycopg COPY, COMMIT per 100"}
    for name, label in raw.items():
        print(f"| {label} | {median[name]:,.0f} | {ratio[name]:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
