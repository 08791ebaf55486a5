"""Read storm: latency of /healthz, /readyz, /metrics and one-event ingest while 50 clients ask /v1/stats.

The database (--storm-rows events, 1,000,000 by default) is built with one INSERT ... SELECT over a
recursive CTE into the service's own schema, then the service (default settings) is started on it. 50
client threads ask `GET /v1/stats?bucket=day` back to back for --storm-duration seconds (a 503 is retried
after its Retry-After); one prober asks each of the four routes in turn every 50 ms. Reported: p50 / p95 / max per
route, and how many stats were answered 200 and 503.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.ingest_bench import Served
from tests.support.large_store import fill_events

STORM = 50
PROBES = ("/healthz", "/readyz", "/metrics", "POST /v1/events")


def build(path: Path, rows: int) -> None:
    Served("schema", ["-m", "app", "serve"], {"TELEMETRY_DATABASE_URL": f"sqlite:///{path}"}).stop()
    fill_events(path, rows)


def storm(url: str, duration_s: float) -> dict[str, Any]:
    stop = threading.Event()
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    latencies: dict[str, list[float]] = {name: [] for name in PROBES}

    def stats() -> None:
        with httpx.Client(base_url=url, timeout=300) as http:
            while not stop.is_set():
                response = http.get("/v1/stats", params={"bucket": "day"})
                with lock:
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code == 503:  # as a well-behaved client does
                    time.sleep(float(response.headers.get("retry-after", 1)))

    def probe() -> None:
        with httpx.Client(base_url=url, timeout=300) as http:
            while not stop.is_set():
                for name in PROBES:
                    t0 = time.perf_counter()
                    if name.startswith("POST"):
                        http.post("/v1/events", json={"user_id": "u", "action": "probe", "source": "bench"})
                    else:
                        http.get(name)
                    latencies[name].append(time.perf_counter() - t0)
                time.sleep(0.05)

    threads = [threading.Thread(target=stats) for _ in range(STORM)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    prober = threading.Thread(target=probe)
    prober.start()
    time.sleep(duration_s)
    stop.set()
    prober.join(300)
    for thread in threads:
        thread.join(300)

    def summary(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {
            "n": len(values),
            "p50_ms": 1000 * statistics.median(ordered),
            "p95_ms": 1000 * ordered[int(0.95 * (len(ordered) - 1))],
            "max_ms": 1000 * ordered[-1],
        }

    return {"stats_statuses": statuses, **{name: summary(v) for name, v in latencies.items() if v}}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--storm-rows", type=int, default=1_000_000)
    parser.add_argument("--storm-duration", type=float, default=20.0)
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="read-storm-") as tmp:
        db = Path(tmp) / "telemetry.db"
        build(db, args.storm_rows)
        server = Served("service", ["-m", "app", "serve"], {"TELEMETRY_DATABASE_URL": f"sqlite:///{db}"})
        try:
            result = {"rows": args.storm_rows, **storm(server.url, args.storm_duration)}
        finally:
            server.stop()
    print(json.dumps({"read_storm": result}, indent=2))
    return {"read_storm": result}


if __name__ == "__main__":
    main()
