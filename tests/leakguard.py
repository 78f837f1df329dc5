"""The whole-suite log leak check: every line the service logs during the run is kept and, at the end, searched
for the secrets and personal data the tests used; one hit fails the run (exit status 1)."""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

import pytest

# Secrets and personal data the suite handed to the service: tokens, keys, codes, emails, phone numbers.
SECRETS: set[str] = set()
# Six-digit codes are short: they count only as a whole word, never inside an id or a timestamp.
CODES: set[str] = set()
_ASCII_CODE = re.compile(r"^[0-9]{6}$")


def register(*values: Any) -> None:
    for value in values:
        if not isinstance(value, str):
            continue
        value = value.strip()
        if _ASCII_CODE.match(value):
            CODES.add(value)
        elif len(value) >= 6:
            SECRETS.add(value.lower())


def register_body(body: Any) -> None:
    """What a test typed: emails, phone numbers and codes are personal data or secrets wherever they go."""
    if isinstance(body, dict):
        for key, value in body.items():
            if key in ("email", "phoneNumber", "code") and isinstance(value, str) and (key != "email" or "@" in value):
                register(value)


class LogSink:
    """Where the in-process service logs during the tests: kept for the final check, echoed for failing tests."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def write(self, data: bytes | str) -> int:
        text = data.decode(errors="replace") if isinstance(data, bytes) else data
        with self._lock:
            self.lines.append(text)
        sys.stdout.write(text)  # pytest shows it with the failing test
        return len(data)

    def flush(self) -> None:
        pass


SINK = LogSink()
_SUBPROCESS_LOGS = Path(tempfile.mkdtemp(prefix="bff-test-logs-"))


def subprocess_log() -> IO[bytes]:
    """A file for one service process's stdout and stderr; it is searched with the rest at the end."""
    fd, _ = tempfile.mkstemp(dir=_SUBPROCESS_LOGS, suffix=".log")
    return os.fdopen(fd, "w+b")


def leaks(lines: list[str]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    long = sorted(SECRETS, key=len, reverse=True)
    patterns = []
    if long:
        patterns.append("|".join(re.escape(s) for s in long))
    if CODES:
        patterns.append(r"(?<![\w.])(?:" + "|".join(sorted(CODES)) + r")(?![\w])")
    if not patterns:
        return found
    pattern = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
    for line in lines:
        match = pattern.search(line)
        if match:
            found.append((match.group(0), line.strip()[:300]))
    return found


def all_lines() -> list[str]:
    lines = list(SINK.lines)
    for path in sorted(_SUBPROCESS_LOGS.glob("*.log")):
        lines.extend(path.read_text(errors="replace").splitlines())
    return lines


def configure_suite_logging() -> None:
    """The service's own logging chain (the redaction processor included), writing JSON lines into the sink, with
    the trace ids a traced app's lines carry (the tracing tests switch tracing on per app, not by settings)."""
    from service.ops.logs import configure_logging
    from service.settings import load_settings

    settings = load_settings({"LOG_LEVEL": "debug", "LOG_FORMAT": "json"}, require_auth=False)
    configure_logging(settings, stream=SINK, trace_ids=True)


def pytest_configure(config: pytest.Config) -> None:
    configure_suite_logging()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    lines = all_lines()
    shutil.rmtree(_SUBPROCESS_LOGS, ignore_errors=True)
    found = leaks(lines)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"log leak check: {len(lines)} log lines, {len(SECRETS) + len(CODES)} secrets searched")
    if found:
        if reporter is not None:
            reporter.write_line(
                f"LOG LEAK: {len(found)} log lines carry a secret or personal data the tests used:", red=True
            )
            for secret, line in found[:20]:
                reporter.write_line(f"  {secret!r} in: {line}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
