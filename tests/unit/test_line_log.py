"""LineLog writes the very line structlog's chain writes (same keys, same order, same values but the time)."""

from __future__ import annotations

import io

import orjson
import structlog

from app.observability import logs as logging_config
from app.observability.logs import LineLog, LineWriter, configure_logging, get_logger


def lines_of(run: object) -> list[dict[str, object]]:
    configure_logging("INFO")
    file = io.BytesIO()
    writer = LineWriter(file)
    saved = logging_config._writer
    logging_config._writer = writer
    structlog.configure(logger_factory=lambda *_args: writer)
    try:
        run()  # type: ignore[operator]
    finally:
        logging_config._writer = saved
        configure_logging("INFO")
    return [orjson.loads(line) for line in file.getvalue().splitlines()]


def test_a_line_has_the_keys_values_and_order_of_the_structlog_line() -> None:
    fields = {"event_id": "e1", "user_id": "u", "action": "click", "source": "web", "timestamp": "t", "n": [1, 2.5]}

    def both() -> None:
        structlog.contextvars.bind_contextvars(request_id="req-1", trace_id="t1")
        try:
            get_logger("telemetry").info("event_recorded", **fields)
            LineLog().info("event_recorded", **fields)
            get_logger("telemetry").warning("access_open", detail="x")
            LineLog().warning("access_open", detail="x")
        finally:
            structlog.contextvars.unbind_contextvars("request_id", "trace_id")

    reference, fast, reference_warning, fast_warning = lines_of(both)
    for slow_line, fast_line in ((reference, fast), (reference_warning, fast_warning)):
        assert list(fast_line) == list(slow_line)
        assert {k: v for k, v in fast_line.items() if k != "time"} == {
            k: v for k, v in slow_line.items() if k != "time"
        }
    assert fast["request_id"] == "req-1"
    assert str(fast["time"]).endswith("Z")


def test_lines_below_the_level_are_not_written() -> None:
    def quiet() -> None:
        LineLog("WARNING").info("event_recorded", event_id="e1")
        LineLog("WARNING").warning("access_open")
        LineLog("ERROR").warning("access_open")

    assert [line["event"] for line in lines_of(quiet)] == ["access_open"]


def test_info_each_writes_the_lines_info_writes_one_by_one() -> None:
    batch = [
        {"event_id": f"e{i}", "user_id": "u", "action": "click", "source": "web", "timestamp": "t"} for i in range(3)
    ]

    def both() -> None:
        structlog.contextvars.bind_contextvars(request_id="req-2")
        try:
            for fields in batch:
                LineLog().info("event_recorded", **fields)
            LineLog().info_each("event_recorded", batch)
            # A field named like a context key keeps its own value, as with info().
            LineLog().info("event_recorded", request_id="mine", n=1)
            LineLog().info_each("event_recorded", [{"request_id": "mine", "n": 1}])
        finally:
            structlog.contextvars.unbind_contextvars("request_id")

    lines = lines_of(both)
    one_by_one, at_once = lines[:3] + lines[6:7], lines[3:6] + lines[7:8]
    for single, each in zip(one_by_one, at_once, strict=True):
        assert list(each) == list(single)
        assert {k: v for k, v in each.items() if k != "time"} == {k: v for k, v in single.items() if k != "time"}
    assert [line["event_id"] for line in at_once[:3]] == ["e0", "e1", "e2"]
    assert at_once[0]["request_id"] == "req-2"
    assert at_once[3]["request_id"] == "mine"


def test_info_each_below_the_level_writes_nothing() -> None:
    assert lines_of(lambda: LineLog("WARNING").info_each("event_recorded", [{"event_id": "e1"}])) == []
