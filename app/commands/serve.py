"""`python -m app serve`: run the HTTP service under uvicorn, one process or several workers."""

from __future__ import annotations

import argparse
import os
import signal
from types import FrameType
from typing import Any


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser("serve", help="run the HTTP service")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--database-url", default=None, help="overrides TELEMETRY_DATABASE_URL")
    parser.add_argument("--workers", type=int, default=1)
    parser.set_defaults(handler=run)


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    """SIGTERM is how a service is asked to stop: once uvicorn has drained and committed, exit 0, not -15.

    uvicorn re-raises the signal after its graceful shutdown; this handler (restored by uvicorn then)
    turns it into a normal exit. Before uvicorn takes over the signal, nothing has been acknowledged yet.
    """
    raise SystemExit(0)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from app.http_protocol import ServeConfig

    if args.database_url:
        # The environment, not an argument: each worker process builds its own Settings from it.
        os.environ["TELEMETRY_DATABASE_URL"] = args.database_url
    from app.commands.startup import ConfigurationProblem, check_port, check_storage, load_settings, report
    from app.observability.logs import configure_logging

    debug = os.environ.get("TELEMETRY_LOG_LEVEL", "").upper() == "DEBUG"
    try:
        settings = load_settings()
        debug = settings.log_level == "DEBUG"
        configure_logging(settings.log_level, settings.log_format)
        check_port(args.host, args.port)
        check_storage(settings)
    except ConfigurationProblem as problem:
        return report("serve", problem, debug)
    signal.signal(signal.SIGTERM, _exit_cleanly)
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": int(settings.shutdown_timeout_s),
        "server_header": False,
        "timeout_keep_alive": settings.http_keep_alive_timeout_s,
    }
    writer = _start_writer_process(settings, args.workers)
    try:
        config = ServeConfig(
            "app.main:app",
            header_timeout_s=settings.http_header_timeout_s,
            max_connections=settings.http_max_connections,
            **options,
        )
        if args.workers > 1:
            # Before any worker imports prometheus_client: /metrics must sum over the workers.
            from app.observability.worker_metrics import prepare_multiprocess_dir, run_workers

            metrics_dir, owned = prepare_multiprocess_dir(settings.metrics_multiproc_dir)
            run_workers(config, metrics_dir, owned)
            return 0
        server = uvicorn.Server(config)
        server.run()
        return 0 if server.started else 3  # uvicorn.run's exit status when start-up fails
    finally:
        # After the workers have drained: they wait for the writer's answers before they exit.
        if writer is not None:
            writer.stop(settings.shutdown_timeout_s)


def writer_process_wanted(setting: str, workers: int) -> bool:
    """auto: a writer process whenever it can run beside the event loop: with several workers, or one worker
    allowed more than one CPU. On a single CPU it would only take turns with the loop; a thread does that."""
    if setting != "auto":
        return setting == "on"
    return workers > 1 or _usable_cpus() > 1


def _usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, e.g. under taskset or a container's cpuset), where the
    platform says (Linux); else the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _start_writer_process(settings: Any, workers: int) -> Any:
    """One writer process per SQLite database, whatever the number of workers; its socket goes to them."""
    if not (
        writer_process_wanted(settings.sqlite_writer_process, workers) and settings.database_url.startswith("sqlite:")
    ):
        return None
    from app.observability.logs import get_logger
    from app.repository.writer_process import WriterSupervisor

    writer = WriterSupervisor(log=get_logger("telemetry"))
    writer.start()
    os.environ["TELEMETRY_WRITER_SOCKET"] = str(writer.socket_path)  # read by each worker's Settings
    return writer
