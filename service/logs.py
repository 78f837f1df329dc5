"""Logging set-up, in one place: structlog to stdout, JSON off a TTY, request context from contextvars."""

from __future__ import annotations

import logging
import sys
from typing import Any

import msgspec
import structlog

from service.settings import Settings

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


# Values msgspec cannot encode natively (an exception, a Path) are logged as their str().
_json = msgspec.json.Encoder(enc_hook=str)


def _to_json(event: dict[str, Any], **_: Any) -> bytes:
    # JSONRenderer passes json.dumps-style keywords (default=...); msgspec takes none of them.
    return _json.encode(event)


def configure_logging(settings: Settings) -> None:
    level = _LEVELS[settings.log_level]
    console = settings.log_format == "console" or (settings.log_format == "" and sys.stdout.isatty())
    processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    if console:
        processors.append(structlog.dev.ConsoleRenderer())
        factory: structlog.types.WrappedLogger = structlog.PrintLoggerFactory(sys.stdout)
    else:
        # msgspec encodes straight to bytes; no stdlib logging hop on the hot path.
        processors.append(structlog.processors.JSONRenderer(serializer=_to_json))
        factory = structlog.BytesLoggerFactory(sys.stdout.buffer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    # Libraries that log through the stdlib (the ASGI server, redis-py) go to stderr at warning and above.
    logging.basicConfig(
        level=max(level, logging.WARNING), stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )
