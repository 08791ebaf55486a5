"""Start-up checks of `serve`: each configuration problem becomes one line on stderr that names the setting
or path and says what to do, and exit code 2, instead of a traceback from inside uvicorn's lifespan."""

from __future__ import annotations

import errno
import socket
import sys
import traceback
from typing import TYPE_CHECKING

from pydantic import ValidationError

if TYPE_CHECKING:
    from app.config import Settings

EXIT_CONFIGURATION = 2  # the convention for a usage or configuration error (argparse uses it too)


class ConfigurationProblem(Exception):
    """What is wrong, in one line a person can act on."""


def _variable(field: str) -> str:
    from app.config import Settings

    info = Settings.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, str):
        return info.validation_alias
    return f"TELEMETRY_{field.upper()}"


def load_settings() -> Settings:
    from app.config import Settings

    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{_variable(field)}: {message}")
        raise ConfigurationProblem(
            "; ".join(problems) + ": fix or unset it (every setting: docs/configuration.md)"
        ) from exc
    except ValueError as exc:  # a list setting that is not valid JSON, before pydantic sees it
        raise ConfigurationProblem(f"a setting cannot be read: {exc} (every setting: docs/configuration.md)") from exc


def check_port(host: str, port: int) -> None:
    """Fails now, with a clear line, when uvicorn would fail to bind later."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigurationProblem(
                    f"--port {port}: {host}:{port} is already in use: stop the other server or choose another"
                    f" port (--port, or make run PORT=...)"
                ) from exc
            raise ConfigurationProblem(
                f"--host {host} --port {port}: cannot listen there ({exc.strerror}): choose another host or port"
            ) from exc


def check_storage(settings: Settings) -> None:
    """Opens (creating and migrating) the configured database once and closes it: every worker then finds it ready."""
    from app.bootstrap import open_store
    from app.repository import UnsupportedDatabaseUrl, parse_database_url
    from app.repository.port import StorageError

    url = settings.database_url
    try:
        target = parse_database_url(url)
    except UnsupportedDatabaseUrl as exc:
        raise ConfigurationProblem(f"TELEMETRY_DATABASE_URL: {exc}") from exc
    where = f"{target.sqlite_path}" if target.sqlite_path is not None else "the PostgreSQL server"
    try:
        open_store(settings).close()
    except OSError as exc:  # the folder cannot be created: read-only, not a folder, no permission
        raise ConfigurationProblem(
            f"TELEMETRY_DATABASE_URL: cannot create {exc.filename or where} ({exc.strerror}):"
            " choose a folder the service may write, e.g. sqlite:///./data/telemetry.db"
        ) from exc
    except StorageError as exc:
        if target.sqlite_path is not None:
            advice = f"check that {target.sqlite_path.parent} is writable and the file is a SQLite database"
        else:
            advice = "check that the server is up and reachable, the user and password, and its rights"
        raise ConfigurationProblem(f"TELEMETRY_DATABASE_URL: {_one_line(str(exc))}: {advice}") from exc


def _one_line(text: str) -> str:
    return " ".join(text.split())


def report(command: str, problem: ConfigurationProblem, debug: bool) -> int:
    """Print the problem as one line on stderr (the traceback too at log level DEBUG); the exit code."""
    if debug:
        traceback.print_exception(problem.__cause__ or problem, file=sys.stderr)
    print(f"{command}: {_one_line(str(problem))}", file=sys.stderr)
    return EXIT_CONFIGURATION
