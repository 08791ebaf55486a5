"""Structured logs: one JSON object a line on stdout, ours and uvicorn's alike.

Our lines go through structlog to a bytes logger with orjson (fast); the few lines other libraries write
through the standard library are rendered to the same JSON shape by structlog's ProcessorFormatter.
The request id bound in the HTTP middleware (contextvars) appears on every line a request causes.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog
from structlog.typing import EventDict, Processor

_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR}


def _dumps(value: Any, **_: Any) -> bytes:
    return orjson.dumps(value, default=str)


def _dumps_text(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def _drop_color_message(_logger: Any, _name: str, event_dict: EventDict) -> EventDict:
    event_dict.pop("color_message", None)  # uvicorn's ANSI-coloured copy of the message
    return event_dict


def configure_logging(level: str = "INFO") -> None:
    """Idempotent: safe to call once per app built (tests build many)."""
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        # "time", not "timestamp": an event_recorded line carries the event's own timestamp.
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, structlog.processors.JSONRenderer(_dumps)],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.BytesLoggerFactory(sys.stdout.buffer),
        cache_logger_on_first_use=True,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _drop_color_message,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(_dumps_text),
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
    for name in ("uvicorn", "uvicorn.error"):
        lib_logger = logging.getLogger(name)
        lib_logger.handlers[:] = []
        lib_logger.propagate = True
    # Our middleware writes one access line per request with the route template and request id.
    access = logging.getLogger("uvicorn.access")
    access.handlers[:] = []
    access.propagate = False
    access.disabled = True


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
