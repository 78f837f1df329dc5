"""Logging set-up, in one place: structlog to stdout, JSON off a TTY, request and trace context, and redaction of secrets and PII."""

from __future__ import annotations

import asyncio
import atexit
import functools
import logging
import re
import sys
import threading
from typing import IO, Any

import msgspec
import structlog

from service.ops.context import request_info_var
from service.settings import Settings

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

REDACTED = "[redacted]"
# Values under these keys are dropped whole, wherever they appear (any depth, any case).
_DROP_EXACT = frozenset({"code", "codes", "otp", "pin", "cvv", "pan", "body", "raw", "content", "text", "data"})
_DROP_PARTS = ("secret", "password", "token", "authorization", "api_key", "apikey", "cookie", "otp", "signature")
# No "/" in the local part (RFC 5322 allows it): in logs an email mostly follows a path segment.
_EMAIL = re.compile(r"([\w.!#$%&'*+=?^`{|}~-]{1,64})@((?:[\w-]+\.)+[\w-]{2,63})")
_PHONE = re.compile(r"\+[1-9](?:[\s().-]?\d){6,14}(?!\d)")
_JWT = re.compile(r"eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*")
_URL_CREDENTIALS = re.compile(r"://[^/\s@]*@")
# One cheap test before any regex: most strings in an event (paths, ids, levels) contain none of these.
_SUSPECT = re.compile(r"[@+]|eyJ")
_MAX_DEPTH = 4


@functools.lru_cache(maxsize=1024)
def _drop(key: str) -> bool:
    low = key.lower()
    return low in _DROP_EXACT or any(part in low for part in _DROP_PARTS)


def _mask_email(match: re.Match[str]) -> str:
    return f"{match.group(1)[:2]}***@{match.group(2)}"


def _mask_phone(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return f"+{digits[:2]}{'*' * (len(digits) - 4)}{digits[-2:]}"


def scrub(text: str) -> str:
    """Masks emails and phone numbers and removes JWT-looking strings from free text."""
    if len(text) < 6 or not _SUSPECT.search(text):
        return text
    text = _JWT.sub("[jwt]", text)
    if "@" in text:
        text = _URL_CREDENTIALS.sub("://[redacted]@", text)
        text = _EMAIL.sub(_mask_email, text)
    if "+" in text:
        text = _PHONE.sub(_mask_phone, text)
    return text


def _clean(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return REDACTED  # raw bytes are upstream or request bodies: never logged
    if depth >= _MAX_DEPTH:
        return REDACTED
    if isinstance(value, dict):
        return {k: REDACTED if isinstance(k, str) and _drop(k) else _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_clean(v, depth + 1) for v in value]
    return scrub(repr(value))


def redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: drops secret-named fields, masks emails and phones, removes tokens, in every event."""
    for key, value in event.items():
        if _drop(key) and key != "event":
            event[key] = REDACTED
        elif isinstance(value, str):
            if len(value) >= 6:
                event[key] = scrub(value)
        elif not isinstance(value, (int, float, bool)) and value is not None:
            event[key] = _clean(value, 0)
    return event


def trace_ids_processor() -> structlog.types.Processor:
    """A structlog processor adding the current OpenTelemetry span's `trace_id` and `span_id`, spelled as OTLP
    backends show them. Built (and OpenTelemetry imported) only when tracing is on: off, no processor runs at all.

    The request line is written after the request's server span has ended, so outside any span it falls back to
    the span the tracing hook kept for the request (service/ops/tracing.py)."""
    from opentelemetry.trace import get_current_span

    def add_trace_ids(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
        context = get_current_span().get_span_context()
        if not context.is_valid:
            info = request_info_var.get()
            if info is None or info.span is None:
                return event
            context = info.span.get_span_context()  # type: ignore[attr-defined]
        event["trace_id"] = format(context.trace_id, "032x")
        event["span_id"] = format(context.span_id, "016x")
        return event

    return add_trace_ids


def _encode_json(event: dict[str, Any], *, default: Any = repr) -> bytes:
    # structlog passes json.dumps' `default`; msgspec calls the same hook `enc_hook`.
    return msgspec.json.encode(event, enc_hook=default)


class TickWriter:
    """A structlog logger writing the lines logged in one event-loop tick with one write(2), at the tick's end.

    structlog's BytesLogger writes and flushes every line, one system call each: in a profile under load that was
    a third of what the request line cost. Here a line logged inside a running loop is buffered and the buffer
    written by a callback the loop runs right after the current batch of callbacks (microseconds later); outside a
    loop (start-up, threads) a line is written at once, after any buffered ones. Buffered lines are also written at
    64 KiB, at exit, and from `drain()` on, which the app calls as it stops: after a SIGTERM uvicorn re-raises the
    signal and the process ends without running exit handlers. A failed write drops its lines rather than fail
    the request that logged them; a closed or broken stream ends writing."""

    _LIMIT = 64 * 1024

    def __init__(self, file: IO[bytes]) -> None:
        self._file: IO[bytes] | None = file
        self._lines: list[bytes] = []
        self._size = 0
        self._lock = threading.RLock()  # re-entrant: a line logged while a write is under way must not deadlock
        self._armed: asyncio.AbstractEventLoop | None = None
        self._immediate = False

    def msg(self, message: bytes) -> None:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self._lock:
            self._lines.append(message)
            self._size += len(message) + 1
            if loop is None or self._immediate or self._size >= self._LIMIT:
                self._write()
            elif self._armed is not loop:
                # Also re-armed on a new loop: one that closed before its callback ran must not strand lines.
                self._armed = loop
                loop.call_soon(self.flush)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg

    def flush(self) -> None:
        with self._lock:
            self._write()

    def drain(self) -> None:
        """Write what is held, and every later line at once."""
        with self._lock:
            self._immediate = True
            self._write()

    def _write(self) -> None:
        self._armed = None
        if not self._lines:
            return
        data = b"\n".join(self._lines) + b"\n"
        self._lines.clear()
        self._size = 0
        if self._file is None:
            return
        try:
            self._file.write(data)
            self._file.flush()
        except (BrokenPipeError, ValueError):  # the reader went away, or the stream was closed: nowhere to write
            self._file = None
        except OSError:
            pass  # these lines are lost; the next batch is tried again


_writer: TickWriter | None = None


def drain() -> None:
    """Write the held log lines and every later one at once (the app calls this as it stops)."""
    if _writer is not None:
        _writer.drain()


def _flush_at_exit() -> None:
    if _writer is not None:
        _writer.flush()


atexit.register(_flush_at_exit)


def configure_logging(settings: Settings, *, stream: IO[Any] | None = None, trace_ids: bool | None = None) -> None:
    """`stream` replaces stdout and stderr (JSON lines, bytes from structlog and text from the stdlib): the tests
    use it to read every line the service writes. `trace_ids` (default: whether tracing is configured) adds
    `trace_id` and `span_id` to every line logged inside a traced request; while off, no processor is added."""
    global _writer  # the one writer of this process, for drain() and the exit handler
    if _writer is not None:
        _writer.flush()  # lines held for the stream being replaced
        _writer = None
    level = _LEVELS[settings.log_level]
    traced = bool(settings.otel_exporter_otlp_endpoint) if trace_ids is None else trace_ids
    console = stream is None and (
        settings.log_format == "console" or (settings.log_format == "" and sys.stdout.isatty())
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        *([trace_ids_processor()] if traced else []),
        # Last before rendering, so it also sees the formatted exception and every bound or merged value.
        redact,
    ]
    processors = list(shared)
    if console:
        processors.append(structlog.dev.ConsoleRenderer())
        factory: structlog.types.WrappedLogger = structlog.PrintLoggerFactory(sys.stdout)
    else:
        # msgspec encodes straight to bytes; no stdlib logging hop on the hot path.
        processors.append(structlog.processors.JSONRenderer(serializer=_encode_json))
        writer = _writer = TickWriter(stream or sys.stdout.buffer)
        factory = lambda *_: writer  # noqa: E731 (one writer for every logger: one buffer, lines in order)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    # Libraries that log through the stdlib (the ASGI server, redis-py) go to stderr at warning and above,
    # through the same redaction: their messages can carry URLs with credentials or request data.
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared[1:],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.dev.ConsoleRenderer(colors=False) if console else structlog.processors.JSONRenderer(),
            ],
        )
    )
    logging.basicConfig(level=max(level, logging.WARNING), handlers=[handler], force=True)
