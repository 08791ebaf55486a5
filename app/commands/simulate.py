"""`python -m app simulate`: write reproducible synthetic events through the repository, or send them to a
running service over HTTP (a load generator)."""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.commands.progress import progress_bar
from app.json_codec import dump_json, event_document
from app.models import UserActionEvent
from app.simulation import SimulationParams, in_batches, simulate

DEFAULTS = SimulationParams()
# Every simulated event says so in its metadata, so synthetic data can always be told from real data.
SIMULATED_MARKER = "simulated"


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "simulate",
        help="generate realistic synthetic events (planted patterns: see app/simulation/)",
        description="Reproducible synthetic events: the same arguments give the same events. Each one carries"
        f' metadata "{SIMULATED_MARKER}": true. Name where they go: --database-url (a database of their own, e.g.'
        " sqlite:///data/demo/demo.db) or --target (a running service).",
    )
    parser.add_argument("--events", type=int, default=DEFAULTS.events)
    parser.add_argument("--users", type=int, default=DEFAULTS.users)
    parser.add_argument("--days", type=int, default=DEFAULTS.days)
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    parser.add_argument(
        "--start", type=_utc_date, default=DEFAULTS.start, help="first day, YYYY-MM-DD (UTC); default %(default)s"
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--database-url", default=None, help="write here; the service's own TELEMETRY_DATABASE_URL needs --into-live"
    )
    where.add_argument("--target", default=None, help="send to a running service, e.g. http://127.0.0.1:8000")
    parser.add_argument(
        "--into-live",
        action="store_true",
        help="allow --database-url to be the service's configured database: synthetic events can never be removed",
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="events per repository transaction (5000) or per HTTP batch (1000)"
    )
    parser.add_argument("--concurrency", type=int, default=4, help="HTTP batches in flight (with --target)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes that each generate and write a part of the same stream (SQLite commits one at a time)",
    )
    parser.add_argument(
        "--api-key", default=None, help="with --target: a key of scope ingest, when the service requires keys"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def _utc_date(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from exc


def run(args: argparse.Namespace) -> int:
    fields = {"events": args.events, "users": args.users, "days": args.days, "seed": args.seed, "start": args.start}
    try:
        params = SimulationParams(**fields)
        events = marked_simulated(simulate(params))
    except ValueError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    if args.target:
        return send_over_http(
            events, params.events, args.target, args.batch_size or 1000, args.concurrency, not args.quiet,
            api_key=args.api_key,
        )  # fmt: skip
    if not args.into_live and is_live_database(args.database_url):
        print(
            f"simulate: {args.database_url} is the service's own database (TELEMETRY_DATABASE_URL); synthetic"
            " events there can never be removed: write to another one, e.g. --database-url"
            " sqlite:///data/demo/demo.db, or add --into-live",
            file=sys.stderr,
        )
        return 2
    if args.workers > 1:
        return write_in_parallel(fields, args.workers, args.database_url, args.batch_size or 5000, not args.quiet)
    return write_to_repository(events, params.events, args.database_url, args.batch_size or 5000, not args.quiet)


def marked_simulated(events: Iterable[UserActionEvent]) -> Iterator[UserActionEvent]:
    for event in events:
        yield dataclasses.replace(event, metadata={**event.metadata, SIMULATED_MARKER: True})


def _same_database(url: str) -> str:
    """One spelling per database: sqlite URLs by their resolved file, others as written."""
    if url.startswith("sqlite:///"):
        return "sqlite:" + str(Path(url.removeprefix("sqlite:///").split("?", 1)[0]).resolve())
    return url.rstrip("/")


def is_live_database(database_url: str) -> bool:
    """True when the URL names the database the service is configured to serve (TELEMETRY_DATABASE_URL)."""
    from app.config import Settings

    return _same_database(database_url) == _same_database(Settings().database_url)


def _summary(counts: Counter[str], total: int, seconds: float) -> str:
    parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    return f"{total} events in {seconds:.1f} s ({total / max(seconds, 1e-9):,.0f}/s): {parts}"


def write_to_repository(
    events: Iterator[UserActionEvent], total: int, database_url: str, batch_size: int, show: bool
) -> int:
    from app.repository import open_repository

    # A bulk load of synthetic data: NORMAL survives a crash of this process, which is all it needs.
    repository = open_repository(database_url, synchronous="NORMAL")
    counts: Counter[str] = Counter()
    bar = progress_bar(total, "ev", "simulate", show)
    started = time.perf_counter()
    try:
        for chunk in in_batches(events, batch_size):
            for result in repository.add(chunk):
                counts[result.status.value] += 1
            bar.update(len(chunk))
    finally:
        bar.close()
        repository.close()
    print(_summary(counts, total, time.perf_counter() - started), file=sys.stderr)
    return 0 if counts["conflict"] == 0 else 1


def _write_part(fields: dict[str, Any], part: int, parts: int, database_url: str, batch_size: int, queue: Any) -> None:
    """One worker process: generate one part of the stream and write it through its own repository."""
    from app.repository import open_repository

    counts: Counter[str] = Counter()
    try:
        repository = open_repository(database_url, synchronous="NORMAL")
        try:
            for chunk in in_batches(marked_simulated(simulate(SimulationParams(**fields), part, parts)), batch_size):
                for result in repository.add(chunk):
                    counts[result.status.value] += 1
                queue.put(("progress", len(chunk)))
        finally:
            repository.close()
    except Exception as exc:  # reported to the parent, which fails the command with it
        queue.put(("error", f"{type(exc).__name__}: {exc}"))
        return
    queue.put(("done", dict(counts)))


def write_in_parallel(fields: dict[str, Any], workers: int, database_url: str, batch_size: int, show: bool) -> int:
    """Each worker generates and writes its own part: generation runs on every core, while SQLite takes
    the workers' transactions one at a time (WAL: the others keep generating meanwhile)."""
    from app.repository import open_repository

    open_repository(database_url).close()  # create and migrate once, before the workers race for it
    context = multiprocessing.get_context("spawn")  # no inherited threads or connections
    queue = context.Queue()
    processes = [
        context.Process(target=_write_part, args=(fields, part, workers, database_url, batch_size, queue))
        for part in range(workers)
    ]
    for process in processes:
        process.start()
    counts: Counter[str] = Counter()
    errors: list[str] = []
    bar = progress_bar(fields["events"], "ev", "simulate", show)
    started = time.perf_counter()
    try:
        finished = 0
        while finished < workers:
            kind, value = queue.get()
            if kind == "progress":
                bar.update(value)
            else:
                finished += 1
                if kind == "done":
                    counts.update(value)
                else:
                    errors.append(value)
    finally:
        bar.close()
        for process in processes:
            process.join()
    for error in errors:
        print(f"simulate: a worker failed: {error}", file=sys.stderr)
    print(_summary(counts, sum(counts.values()), time.perf_counter() - started), file=sys.stderr)
    return 1 if errors or counts["conflict"] else 0


def event_body(event: UserActionEvent) -> dict[str, Any]:
    """The event as a client sends it: the server stamps received_at itself."""
    document = event_document(event)
    del document["received_at"]
    return document


def _post_batch(client: Any, chunk: Sequence[UserActionEvent]) -> Counter[str]:
    """POST one batch; waits out 503 (queue full) as Retry-After says; other refusals count as rejected."""
    body = dump_json({"events": [event_body(e) for e in chunk]}).encode()
    for _attempt in range(20):
        response = client.post("/v1/events/batch", content=body, headers={"content-type": "application/json"})
        if response.status_code == 503:
            time.sleep(min(float(response.headers.get("retry-after", "1") or 1), 5.0))
            continue
        if response.status_code != 200:
            return Counter({f"rejected (HTTP {response.status_code})": len(chunk)})
        data = response.json()
        return Counter({k: int(data[k]) for k in ("accepted", "duplicate", "conflict", "invalid") if data.get(k)})
    return Counter({"rejected (HTTP 503, gave up)": len(chunk)})


def send_over_http(
    events: Iterator[UserActionEvent],
    total: int,
    target: str,
    batch_size: int,
    concurrency: int,
    show: bool,
    api_key: str | None = None,
) -> int:
    import httpx

    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    counts: Counter[str] = Counter()
    bar = progress_bar(total, "ev", f"send to {target}", show)
    started = time.perf_counter()
    pending: list[tuple[Future[Counter[str]], int]] = []

    def settle(keep: int) -> None:
        while len(pending) > keep:
            future, size = pending.pop(0)
            counts.update(future.result())
            bar.update(size)

    try:
        with (
            httpx.Client(base_url=target.rstrip("/"), timeout=60, headers=headers) as client,
            ThreadPoolExecutor(max(1, concurrency)) as pool,
        ):
            for chunk in in_batches(events, batch_size):
                pending.append((pool.submit(_post_batch, client, chunk), len(chunk)))
                settle(keep=2 * concurrency)  # bounded: a few batches in flight, never the whole stream
            settle(keep=0)
    except httpx.TransportError as exc:
        print(f"simulate: cannot reach {target}: {exc}", file=sys.stderr)
        return 1
    finally:
        bar.close()
    print(_summary(counts, sum(counts.values()), time.perf_counter() - started), file=sys.stderr)
    accepted = counts["accepted"] + counts["duplicate"]
    print(f"accepted {accepted}, rejected {sum(counts.values()) - accepted}", file=sys.stderr)
    return 0 if accepted == sum(counts.values()) else 1
