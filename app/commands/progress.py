"""A progress bar on stderr for long commands; tqdm is an analysis dependency, loaded only when used."""

from __future__ import annotations

import sys
from typing import Any, Protocol


class Progress(Protocol):
    def update(self, n: int) -> Any: ...
    def close(self) -> None: ...


class _Silent:
    def update(self, n: int) -> None:
        return None

    def close(self) -> None:
        return None


def progress_bar(total: int | None, unit: str, description: str, enabled: bool = True) -> Progress:
    if not enabled:
        return _Silent()
    try:
        from tqdm import tqdm
    except ImportError:  # a runtime-only install (make run): work on without a bar
        print(f"{description}: for a progress bar run `make analysis-deps`", file=sys.stderr)
        return _Silent()
    bar: Progress = tqdm(
        total=total, unit=unit, unit_scale=True, desc=description, file=sys.stderr, mininterval=0.5, smoothing=0.1
    )
    return bar
