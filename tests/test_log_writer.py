"""The log writer batches the lines of one event-loop tick into one write, in order, and never strands a line."""

from __future__ import annotations

import asyncio
import io
import threading

import pytest

from service.ops import logs
from service.ops.logs import TickWriter


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


def held_by_a_stopped_loop(writer: TickWriter, line: bytes) -> None:
    """Logs `line` in a loop that stops in the same tick and closes: the flush callback never runs."""
    loop = asyncio.new_event_loop()

    def log_and_stop() -> None:
        writer.msg(line)
        loop.stop()  # ends this iteration: the flush callback is still queued when the loop closes

    loop.call_soon(log_and_stop)
    loop.run_forever()
    loop.close()


def test_outside_a_loop_a_line_is_written_at_once_after_the_buffered_ones() -> None:
    sink = CountingFile()
    writer = TickWriter(sink)
    held_by_a_stopped_loop(writer, b"held")
    assert sink.getvalue() == b""
    writer.msg(b"now")
    assert sink.getvalue() == b"held\nnow\n"


def test_a_loop_that_closes_before_its_flush_does_not_strand_lines() -> None:
    sink = CountingFile()
    writer = TickWriter(sink)
    held_by_a_stopped_loop(writer, b"from a loop that stops at once")
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


def test_at_exit_the_process_writer_writes_what_is_held(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = CountingFile()
    writer = TickWriter(sink)
    monkeypatch.setattr(logs, "_writer", writer)
    held_by_a_stopped_loop(writer, b"held")
    logs._flush_at_exit()  # registered with atexit
    assert sink.getvalue() == b"held\n"


def test_after_drain_every_line_is_written_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # The app drains as it stops: after a SIGTERM, uvicorn re-raises the signal and no exit handler runs.
    sink = CountingFile()
    writer = TickWriter(sink)
    monkeypatch.setattr(logs, "_writer", writer)

    async def main() -> None:
        writer.msg(b"held")
        logs.drain()
        assert sink.getvalue() == b"held\n"
        writer.msg(b"last")
        assert sink.getvalue() == b"held\nlast\n"

    asyncio.run(main())


class FailingFile(io.BytesIO):
    def __init__(self, error: BaseException, times: int) -> None:
        super().__init__()
        self.error = error
        self.times = times
        self.tries = 0

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.tries += 1
        if self.tries <= self.times:
            raise self.error
        return super().write(data)


def test_a_failed_write_loses_its_lines_but_never_fails_the_caller() -> None:
    sink = FailingFile(OSError(5, "I/O error"), times=1)
    writer = TickWriter(sink)
    writer.msg(b"lost")  # outside a loop: written at once, and the write fails
    writer.msg(b"kept")
    assert sink.getvalue() == b"kept\n"


def test_a_broken_pipe_ends_writing() -> None:
    sink = FailingFile(BrokenPipeError(32, "Broken pipe"), times=1)
    writer = TickWriter(sink)
    writer.msg(b"first")
    writer.msg(b"second")
    assert sink.tries == 1  # nobody reads any more: not tried again


def test_a_line_logged_while_writing_does_not_deadlock() -> None:
    writer: TickWriter

    class LoggingFile(io.BytesIO):
        def write(self, data: bytes) -> int:  # type: ignore[override]
            if data.startswith(b"outer"):
                writer.msg(b"inner")  # e.g. a stream that logs, or a signal handler
            return super().write(data)

    sink = LoggingFile()
    writer = TickWriter(sink)
    done = threading.Event()

    def log() -> None:
        writer.msg(b"outer")
        done.set()

    threading.Thread(target=log, daemon=True).start()
    assert done.wait(5), "writing a line from inside a write deadlocked"
    assert sorted(sink.getvalue().splitlines()) == [b"inner", b"outer"]
