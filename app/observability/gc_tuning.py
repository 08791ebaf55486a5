"""Garbage-collector settings for a long-running server process, applied once start-up is done.

Start-up builds a large, long-lived heap (FastAPI's routes and schemas, pydantic's validators); each
full collection would scan all of it again, and the default gen-0 threshold (700 allocations) runs a
collection every few requests. Freezing the start-up heap moves it out of the collector's sight, and a
higher gen-0 threshold lets a request's short-lived objects die by reference count before a collection.
Reference cycles are still collected, just less often. A server process builds one app: a process that
builds many (the tests) freezes only at the first.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 20_000
_frozen = False  # once per process: cyclic garbage frozen with a heap is never collected, so never twice


def freeze_startup_heap() -> None:
    global _frozen
    if _frozen:
        return
    _frozen = True
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
