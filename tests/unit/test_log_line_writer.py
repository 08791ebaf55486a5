"""The log output writes whole JSON lines, and a request's lines together in one write."""

from __future__ import annotations

import asyncio
import io

from app.observability import logs as logging_config
from app.observability.logs import LineWriter


class RecordingFile(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.writes.append(bytes(data))
        return len(data)


def test_outside_a_request_each_line_is_written_at_once() -> None:
    file = RecordingFile()
    writer = LineWriter(file)
    writer.msg(b'{"event":"a"}')
    writer.msg(b'{"event":"b"}')
    assert file.writes == [b'{"event":"a"}\n', b'{"event":"b"}\n']


def test_lines_of_requests_ending_in_one_loop_turn_share_one_write() -> None:
    file = RecordingFile()
    writer = LineWriter(file)
    logging_config._writer, saved = writer, logging_config._writer
    try:

        async def request(n: int) -> None:
            token = logging_config.defer_log_flush()
            for i in range(100):  # a batch of 100 events: one line each
                writer.msg(b'{"event":"event_recorded","n":%d,"i":%d}' % (n, i))
            assert file.writes == []  # held while the request runs
            logging_config.end_log_deferral(token)

        async def scenario() -> None:
            await asyncio.gather(request(1), request(2))
            await asyncio.sleep(0)  # the loop turn in which the flush was scheduled

        asyncio.run(scenario())
    finally:
        logging_config._writer = saved
    assert len(file.writes) == 1
    lines = file.writes[0].split(b"\n")
    assert lines[-1] == b""
    assert len(lines) == 201
