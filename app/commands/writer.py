"""`python -m app.commands.writer SOCKET`: the writer process that `serve` starts and supervises.

Not a command for people: `serve` runs it (app/repository/writer_process.py, WriterSupervisor). It builds the
same repository and GroupCommitWriter as an in-process runtime would, from the same Settings (the writer
commits the workers' rows through a RowStore, not events), and serves
the workers' requests on SOCKET until SIGTERM or until its supervisor goes away.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.commands.writer")
    parser.add_argument("socket", type=Path)
    args = parser.parse_args(argv)

    from app.bootstrap import group_commit_writer, open_store, wal_bound
    from app.config import Settings
    from app.observability.gc_tuning import freeze_startup_heap
    from app.observability.logs import configure_logging, get_logger
    from app.repository.writer_process import ReportedCommits, RowStore, run_writer

    settings = Settings()
    configure_logging(settings.log_level)
    log = get_logger("telemetry.writer")
    repository = open_store(settings)
    commits = ReportedCommits()
    writer = group_commit_writer(settings, RowStore(repository), commits, wal_bound(settings, repository, commits))
    log.info("writer_process_started", pid=os.getpid())
    freeze_startup_heap()
    try:
        drained = run_writer(args.socket, writer, commits, settings.shutdown_timeout_s)
    finally:
        repository.close()
    log.info("writer_process_stopped", pid=os.getpid(), drained=drained)
    return 0 if drained else 1


if __name__ == "__main__":
    raise SystemExit(main())
