"""Route behaviour in this process: the app the wiring module builds, driven through httpx's ASGI transport."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.in_process import InProcessClient, in_process_app

MakeClient = Callable[..., InProcessClient]


@pytest.fixture
def make_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeClient]:
    """make_client(env={...}, **settings): a started app on a SQLite file in tmp_path, its Settings read from
    those TELEMETRY_* variables (as a deployment sets them) and those keyword settings."""
    with ExitStack() as stack:

        def make(env: dict[str, str] | None = None, **settings: Any) -> InProcessClient:
            for name, value in (env or {}).items():
                monkeypatch.setenv(name, value)
            return stack.enter_context(in_process_app(tmp_path, **settings))

        yield make


@pytest.fixture
def client(make_client: MakeClient) -> InProcessClient:
    return make_client()


def metric_value(client: InProcessClient, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total
