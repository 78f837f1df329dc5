"""The log writer batches the lines of one event-loop tick into one write, in order, and never strands a line."""

from __future__ import annotations

import asyncio
import io

from service.logs import TickWriter


class CountingFile(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.writes += 1
        return super().write(data)


def test_lines_of_one_tick_are_one_write_after_the_tick() -> None:
    sink = CountingFile()
    writer = TickWriter(sink)

    async def main() -> bytes:
        for i in range(5):
            writer.info(f"line {i}".encode())
        held = sink.getvalue()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return held

    held = asyncio.run(main())
    assert held == b""
    assert sink.getvalue() == b"".join(f"line {i}\n".encode() for i in range(5))
    assert sink.writes == 1


def test_outside_a_loop_a_line_is_written_at_once_after_the_buffered_ones() -> None:
    sink = CountingFile()
    writer = TickWriter(sink)
    writer.msg(b"now")
    assert sink.getvalue() == b"now\n"


def test_a_loop_that_closes_before_its_flush_does_not_strand_lines() -> None:
    sink = CountingFile()
    writer = TickWriter(sink)
    loop = asyncio.new_event_loop()

    def log_and_stop() -> None:
        writer.msg(b"from a loop that stops at once")
        loop.stop()  # ends this iteration: the flush callback is still queued when the loop closes

    loop.call_soon(log_and_stop)
    loop.run_forever()
    loop.close()
    assert sink.getvalue() == b""

    async def later() -> None:
        writer.msg(b"from the next loop")
        await asyncio.sleep(0)

    asyncio.run(later())
    assert sink.getvalue() == b"from a loop that stops at once\nfrom the next loop\n"


def test_a_large_batch_is_written_before_the_tick_ends() -> None:
    sink = CountingFile()
    writer = TickWriter(sink)
    line = b"x" * 1000

    async def main() -> int:
        for _ in range(100):
            writer.msg(line)
        return len(sink.getvalue())

    written_in_tick = asyncio.run(main())
    assert written_in_tick >= 64 * 1024
    assert sink.getvalue() == (line + b"\n") * 100


def test_flush_writes_what_is_held() -> None:
    sink = CountingFile()
    writer = TickWriter(sink)

    async def main() -> None:
        writer.msg(b"held")
        writer.flush()  # what exit does
        assert sink.getvalue() == b"held\n"

    asyncio.run(main())
