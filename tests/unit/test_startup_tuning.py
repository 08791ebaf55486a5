"""Start-up tuning of a server process: the collector leaves the start-up heap alone, the framework's
own OpenTelemetry hook stays off while our tracing is off."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from app.main import create_app
from app.observability import gc_tuning
from app.observability.gc_tuning import GEN0_THRESHOLD, freeze_startup_heap


@pytest.fixture
def restored_gc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    threshold = gc.get_threshold()
    monkeypatch.setattr(gc_tuning, "_frozen", False)
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_a_process_freezes_once(restored_gc: None) -> None:
    gc.unfreeze()
    freeze_startup_heap()
    frozen = gc.get_freeze_count()
    junk = [[i] for i in range(1000)]
    freeze_startup_heap()
    assert gc.get_freeze_count() == frozen
    del junk


def test_freezing_the_startup_heap_hides_it_from_the_collector_and_raises_gen0(restored_gc: None) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    freeze_startup_heap()
    assert gc.get_freeze_count() > 10_000  # the interpreter's and the test run's own objects at least
    assert gc.get_threshold() == (GEN0_THRESHOLD, 10, 10)


def test_the_app_freezes_its_heap_once_started(tmp_path: Path, restored_gc: None) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}"))

    async def start_and_stop() -> None:
        async with app.router.lifespan_context(app):
            assert gc.get_threshold()[0] == GEN0_THRESHOLD
            assert gc.get_freeze_count() > 0

    asyncio.run(start_and_stop())


def test_fastapi_telemetry_is_off_unless_tracing_is(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    # FastAPI keeps its config private; these are the switches its per-request check reads.
    off = create_app(Settings(database_url=url))._telemetry
    assert (off["tracing"], off["metrics"], off["logs"]) == (False, False, False)
    on = create_app(Settings(database_url=url, tracing_enabled=True))._telemetry
    assert on["tracing"] is True
