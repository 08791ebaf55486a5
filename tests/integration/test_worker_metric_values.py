"""Multiprocess metrics keep each process's counts in its own file, also across a fork.

The metrics module gives prometheus_client a process identifier that is read from memory instead of a
getpid() system call on every increment (docs/benchmarks.md: in multi-worker mode that call was most of
the metrics' cost). The cached pid must follow os.fork(), or a forked child would write over its parent's
file and the parent's next increment would erase the child's counts. Run in a fresh interpreter: the value
class is chosen when the module is first imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = """
import os
from app.observability.metrics import PrometheusMetrics

metrics = PrometheusMetrics()
metrics.event_duplicate()
child = os.fork()
if child == 0:
    metrics.event_duplicate()
    metrics.event_duplicate()
    os._exit(0)
os.waitpid(child, 0)
metrics.event_duplicate()
print(os.getpid(), child)
"""


def _duplicates(folder: Path) -> float:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))  # type: ignore[no-untyped-call]
    return sum(
        sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "telemetry_events_duplicate_total"
    )


def test_a_forked_child_counts_in_its_own_file_and_the_parent_keeps_its_counts(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    parent, child = out.split()

    files = sorted(p.name for p in tmp_path.glob("counter_*.db"))
    assert files == sorted([f"counter_{parent}.db", f"counter_{child}.db"])
    assert _duplicates(tmp_path) == 4  # 2 in the parent, 2 in the child: nothing written over
    for pid, expected in ((parent, 2), (child, 2)):
        alone = tmp_path / f"alone-{pid}"
        alone.mkdir()
        (alone / f"counter_{pid}.db").write_bytes((tmp_path / f"counter_{pid}.db").read_bytes())
        assert _duplicates(alone) == expected
