"""Every question the report asks of the analysis package, once, timed one by one (run by
bench.analysis_bench --mode package in a child process, so that its peak RSS is measured alone).

    python -m bench.analysis_questions DATABASE_URL [--legacy] [--cache DIR]

--legacy: only the 13 questions the issue 5 notebook asked, under the names both the old package (SQL on
the store) and this one (DuckDB) give them, so the two can be timed on the same data: run it with
PYTHONPATH pointing at a checkout of either. --cache DIR: the engine's copy kept in DIR between runs
(analysis/cache.py); the load line then says whether it was cold or warm.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from analysis import (
    Breakdown,
    Database,
    connect,
    funnel,
    lifecycle,
    metadata,
    quality,
    retention,
    sessions,
    temporal,
    trends,
    usage,
)

STEPS = ("signup", "activate", "purchase")


def questions() -> dict[str, Callable[[Database], Any]]:
    return {
        "load (store -> engine)": lambda db: db.engine(),
        "overview": quality.overview,
        "duplicate_event_ids": quality.duplicate_event_ids,
        "probable_retries": quality.probable_retries,
        "delivery_delay": quality.delivery_delay,
        "missing_values": quality.missing_values,
        "action_counts": usage.action_counts,
        "actions_by_source": usage.actions_by_source,
        "daily/weekly active users": lambda db: (usage.daily_active_users(db), usage.weekly_active_users(db)),
        "events_per_user": usage.events_per_user,
        "hourly_series": temporal.hourly_series,
        "metadata value_counts": metadata.value_counts,
        "amount by currency": lambda db: metadata.numeric_summary_by_unit(db, "purchase", "amount"),
        "trends day + week": lambda db: (trends.trends(db, "day"), trends.trends(db, "week")),
        "trends by plan": lambda db: trends.trends(db, "week", breakdown=Breakdown.by_property("plan", 3)),
        "property_sum amount": lambda db: trends.property_sum(db, "amount", "week"),
        "active_users (WAU/MAU)": trends.active_users,
        "funnel": lambda db: funnel.funnel(db, STEPS),
        "funnel by source": lambda db: funnel.funnel(db, STEPS, breakdown=Breakdown.by_source()),
        "funnel_by_cohort": lambda db: funnel.funnel_by_cohort(db, STEPS),
        "retention week": retention.retention_matrix,
        "retention rolling": lambda db: retention.retention_matrix(db, period="rolling"),
        "lifecycle": lifecycle.lifecycle,
        "stickiness": lifecycle.stickiness,
        "session_summary": sessions.session_summary,
        "session_lengths": sessions.session_lengths,
        "top_paths": lambda db: sessions.top_paths(db, "signup"),
    }


LEGACY = (
    "overview",
    "duplicate_event_ids",
    "probable_retries",
    "delivery_delay",
    "missing_values",
    "action_counts",
    "actions_by_source",
    "daily/weekly active users",
    "events_per_user",
    "hourly_series",
    "metadata value_counts",
    "funnel",
    "retention week",
)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    started = time.perf_counter()
    cpu_started = time.process_time()
    chosen = questions()
    if "--legacy" in args:
        chosen = {name: chosen[name] for name in LEGACY}
    cache = args[args.index("--cache") + 1] if "--cache" in args else None
    with connect(args[0], cache=cache) if cache else connect(args[0]) as db:
        for name, question in chosen.items():
            begun, cpu = time.perf_counter(), time.process_time()
            question(db)
            print(f"  {name:<28} {time.perf_counter() - begun:6.2f} s wall {time.process_time() - cpu:6.2f} s CPU")
        if db.cache_use is not None:
            print(f"  {db.cache_use.describe()}")
    total = time.perf_counter() - started
    print(f"  {'all questions':<28} {total:6.2f} s wall {time.process_time() - cpu_started:6.2f} s CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
