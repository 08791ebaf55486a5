"""Structured logs: one JSON object a line on stdout, ours and uvicorn's alike (or, with
TELEMETRY_LOG_FORMAT=console, the same fields as aligned text for a person at a terminal).

Our lines go through structlog to a bytes logger with orjson (fast); the few lines other libraries write
through the standard library are rendered to the same JSON shape by structlog's ProcessorFormatter.
The request id bound in the HTTP middleware (contextvars) appears on every line a request causes.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Iterable
from contextvars import ContextVar, Token
from typing import Any, BinaryIO

import orjson
import structlog
from structlog.typing import EventDict, Processor

_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR}


_deferred: ContextVar[bool] = ContextVar("log_flush_deferred", default=False)
_MAX_PENDING_LINES = 1000


class LineWriter:
    """structlog's output: one JSON line per call, always written whole.

    Inside a request (see defer_log_flush) lines are held and written right after the request ends, together
    with those of every request ending in the same turn of the event loop: a batch of 100 events, or 30
    concurrent requests, cost one write instead of one each. Elsewhere each line is written at once.
    """

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._pending: list[bytes] = []
        self._lock = threading.Lock()
        self._flush_scheduled = False

    def msg(self, message: bytes) -> None:
        with self._lock:
            self._pending.append(message)
            if not _deferred.get() or len(self._pending) >= _MAX_PENDING_LINES:
                self._write_pending()

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg

    def flush(self) -> None:
        with self._lock:
            self._flush_scheduled = False
            self._write_pending()

    def flush_soon(self) -> None:
        """Write pending lines once the event loop has run what is ready: requests ending together share a write."""
        if self._flush_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._flush_scheduled = True
        loop.call_soon(self.flush)

    def _write_pending(self) -> None:
        if self._pending:
            self._pending.append(b"")
            data = b"\n".join(self._pending)
            self._pending = []
            self._file.write(data)
            self._file.flush()


_writer = LineWriter(sys.stdout.buffer)


def defer_log_flush() -> Token[bool]:
    """Hold this context's log lines until end_log_deferral (the HTTP middleware brackets each request)."""
    return _deferred.set(True)


def end_log_deferral(token: Token[bool]) -> None:
    _deferred.reset(token)
    _writer.flush_soon()


_second_text: tuple[int, str] = (0, "")


def add_time(_logger: Any, _name: str, event_dict: EventDict) -> EventDict:
    """UTC time with microseconds, 'Z'-suffixed, like structlog's TimeStamper(fmt="iso", utc=True) but ~6x cheaper.

    The text of the current second is formatted once a second; every line appends its microseconds.
    """
    global _second_text
    now = time.time()
    second = int(now)
    if _second_text[0] != second:
        _second_text = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    event_dict["time"] = f"{_second_text[1]}.{int((now - second) * 1_000_000):06d}Z"
    return event_dict


def _dumps(value: Any, **_: Any) -> bytes:
    return orjson.dumps(value, default=str)


def _dumps_text(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def _drop_color_message(_logger: Any, _name: str, event_dict: EventDict) -> EventDict:
    event_dict.pop("color_message", None)  # uvicorn's ANSI-coloured copy of the message
    return event_dict


def _encode(_logger: Any, _name: str, line: Any) -> bytes:
    """After the console renderer (text): the line writer takes bytes."""
    return str(line).encode("utf-8", "replace")


def configure_logging(level: str = "INFO", log_format: str = "json") -> None:
    """Idempotent: safe to call once per app built (tests build many)."""
    global _writer
    _writer.flush()
    _writer = LineWriter(sys.stdout.buffer)
    writer = _writer
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        # "time", not "timestamp": an event_recorded line carries the event's own timestamp.
        add_time,
    ]
    console = log_format == "console"
    # Colours only when a person reads the terminal; piped to a file the console lines stay plain text.
    text_renderer = structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty(), sort_keys=False) if console else None
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, text_renderer, _encode]
        if text_renderer
        else [*shared, structlog.processors.format_exc_info, structlog.processors.JSONRenderer(_dumps)],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=lambda *_args: writer,
        cache_logger_on_first_use=True,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _drop_color_message,
            structlog.processors.format_exc_info,
            text_renderer or structlog.processors.JSONRenderer(_dumps_text),
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


class LineLog:
    """The hot path's logger: the same JSON line as structlog's chain above (fields, event, the context's
    request/trace ids, level, time), rendered by one orjson call instead of a chain of processors.

    For the lines written once per request or per event (http_request, event_recorded, event_rejected);
    everything else goes through structlog.
    """

    def __init__(self, level: str = "INFO", log_format: str = "json") -> None:
        self._level = _LEVELS[level]
        # The console format is for a person at a terminal: its lines go through structlog's text renderer.
        self._text = get_logger("telemetry") if log_format == "console" else None

    def _line(self, level: str, event: str, fields: dict[str, Any]) -> None:
        if self._text is not None:
            self._text.log(_LEVELS[level.upper()], event, **fields)
            return
        fields["event"] = event
        structlog.contextvars.merge_contextvars(None, "", fields)
        fields["level"] = level
        add_time(None, "", fields)
        _writer.msg(orjson.dumps(fields, default=str))

    def info(self, event: str, **fields: Any) -> None:
        if self._level <= logging.INFO:
            self._line("info", event, fields)

    def info_each(self, event: str, lines: Iterable[dict[str, Any]]) -> None:
        """One info line per dict of fields, as info(event, **fields) writes each: the context's ids and the
        time are read once for all of them (a batch's lines are written in one go), not once a line."""
        if self._level > logging.INFO:
            return
        if self._text is not None:
            for fields in lines:
                self._line("info", event, fields)
            return
        context = structlog.contextvars.merge_contextvars(None, "", {})
        tail = add_time(None, "", {"event": event, **context, "level": "info"})
        dumps, write, apart = orjson.dumps, _writer.msg, context.keys().isdisjoint
        for fields in lines:
            if apart(fields):
                # The keys, order and values of _line's: the fields, event, the context, level, time.
                write(dumps({**fields, **tail}, default=str))
            else:  # a field named like a context key keeps its own value there: _line's way
                self._line("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        if self._level <= logging.WARNING:
            self._line("warning", event, fields)
