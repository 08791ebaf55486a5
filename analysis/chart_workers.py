"""How many processes draw the report's charts by default (analysis/charts.py's BackgroundRenderer).

Apart from analysis.charts so that `python -m app report` can ask without importing matplotlib: the
command only passes the number to the notebook's kernel.
"""

from __future__ import annotations

import os


def default_workers() -> int:
    """One fewer than the cores (the kernel keeps one), at least 1, at most 2: a worker holds about 160 MiB
    (matplotlib, and pandas for the figures' data), and the report's whole tree is meant to stay under 1 GiB
    (docs/benchmarks.md: on 2 cores, 2 workers were 7 % faster than 1 and peaked at 971 MiB)."""
    return max(1, min(2, (os.cpu_count() or 2) - 1))
