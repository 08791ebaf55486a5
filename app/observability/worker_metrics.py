"""Metrics over several worker processes: prometheus_client's multiprocess mode, set up by `serve --workers N`.

prometheus_client picks its value class (in-memory or mmap file) when it is first imported, from
PROMETHEUS_MULTIPROC_DIR; so the directory is chosen and emptied here, in the supervising process, before
any worker starts and imports the app (whose metrics module then swaps in the same mmap value class with a
fork check that makes no system call). /metrics then sums every worker's files (PrometheusMetrics.exposition).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir(configured: str | None) -> tuple[Path, bool]:
    """Point prometheus_client at an empty directory; returns it and whether it is ours to remove at exit."""
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):  # a previous run's counts must not be added to this run's
            stale.unlink()
        owned = False
    else:
        path = Path(tempfile.mkdtemp(prefix="telemetry-metrics-"))
        owned = True
    os.environ[MULTIPROC_ENV] = str(path)
    return path, owned


def run_workers(config: Any, metrics_dir: Path, owned: bool) -> None:
    """Run uvicorn's multi-process supervisor, marking each worker's live gauges dead when it exits."""
    from prometheus_client import multiprocess
    from uvicorn.supervisors import Multiprocess

    class Supervisor(Multiprocess):
        def keep_subprocess_alive(self) -> None:
            before = {p.pid for p in self.processes}
            super().keep_subprocess_alive()
            for pid in before - {p.pid for p in self.processes}:
                if pid is not None:  # a replaced worker: its queue depth no longer counts
                    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]

        def join_all(self) -> None:
            super().join_all()
            for process in self.processes:
                if process.pid is not None:
                    multiprocess.mark_process_dead(process.pid)  # type: ignore[no-untyped-call]

    try:
        sock = config.bind_socket()
        Supervisor(config, sockets=[sock]).run()
    finally:
        if owned:
            shutil.rmtree(metrics_dir, ignore_errors=True)
