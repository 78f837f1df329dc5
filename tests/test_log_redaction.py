"""The logging processor drops secrets and masks personal data wherever they appear in an event."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from service.ops.logs import REDACTED, redact
from tests.conftest import Harness
from tests.leakguard import SINK, leaks

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLWFkYSJ9.c2lnbmF0dXJlLXZhbHVl"


def cleaned(**event: Any) -> dict[str, Any]:
    return redact(None, "info", {"event": "e", **event})


@pytest.mark.parametrize(
    "key",
    [
        "code",
        "otp",
        "otp_code",
        "token",
        "access_token",
        "Authorization",
        "api_key",
        "YATIVO_API_SECRET",
        "webhook_secret",
        "password",
        "body",
        "raw",
        "signature",
        "cookie",
    ],
)
def test_a_value_under_a_secret_key_is_dropped(key: str) -> None:
    assert cleaned(**{key: "123456-very-secret"})[key] == REDACTED


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ada@example.com", "ad***@example.com"),
        ("sent to Ada.Lovelace@Bücher.de today", "sent to Ad***@Bücher.de today"),
        ("call +14155552671 now", "call +14*******71 now"),
        ("call +1 415-555-2671", "call +14*******71"),
        (f"Bearer {JWT}", "Bearer [jwt]"),
        ("redis://:hunter2-password@redis.internal:6379/0", "redis://[redacted]@redis.internal:6379/0"),
    ],
    ids=["email", "email in text", "e164 phone", "formatted phone", "jwt", "url credentials"],
)
def test_personal_data_and_tokens_in_any_string_are_masked(value: str, expected: str) -> None:
    assert cleaned(detail=value)["detail"] == expected
    assert cleaned(event=value)["event"] == expected


def test_nested_values_and_bytes_are_cleaned() -> None:
    event = cleaned(
        upstream={"headers": {"Authorization": f"Bearer {JWT}"}, "to": ["ada@example.com"], "status": 500},
        payload=b'{"code": "123456"}',
    )
    assert event["upstream"] == {"headers": {"Authorization": REDACTED}, "to": ["ad***@example.com"], "status": 500}
    assert event["payload"] == REDACTED


def test_ordinary_values_pass_untouched() -> None:
    event = {
        "event": "request",
        "method": "POST",
        "path": "/v1/card-onboarding/phone",
        "status": 200,
        "duration_ms": 1.25,
        "request_id": "0123456789abcdef0123456789abcdef",
        "upstream_code": "INVALID_OTP",
        "timestamp": "2026-11-26T01:42:28.575644Z",
    }
    assert redact(None, "info", dict(event)) == event


async def test_a_path_carrying_an_email_is_masked_in_the_request_log(bff: Harness) -> None:
    before = len(SINK.lines)
    response = await bff.client.get("/v1/card-onboarding/grace.hopper@example.com", headers=bff.auth())
    assert response.status_code == 404
    written = "".join(SINK.lines[before:])
    assert "gr***@example.com" in written
    assert "grace.hopper@example.com" not in written


def test_stdlib_log_records_pass_the_same_redaction() -> None:
    before = len(SINK.lines)
    logging.getLogger("redis.test").warning("cannot reach redis://:pw-1234567@cache.internal for ada@example.com")
    written = "".join(SINK.lines[before:])
    assert "cache.internal" in written
    assert "pw-1234567" not in written and "ada@example.com" not in written


def test_the_leak_check_finds_a_code_or_secret_but_not_lookalikes() -> None:
    from tests import leakguard

    leakguard.CODES.add("482913")
    leakguard.SECRETS.add("ada@example.com")
    lines = [
        '{"event":"x","attempt":"482913"}',
        '{"event":"x","who":"ADA@example.com"}',
        '{"request_id":"ab482913cd","timestamp":"2026-11-26T01:42:28.482913Z","ms":0.482913}',
        '{"event":"x","who":"ad***@example.com"}',
    ]
    found = leaks(lines)
    leakguard.CODES.discard("482913")
    leakguard.SECRETS.discard("ada@example.com")
    assert [line for _, line in found] == lines[:2]


def test_a_real_server_process_logs_json_lines_with_personal_data_masked(redis_url: str) -> None:
    import json

    import httpx

    from service.http.auth import issue_dev_token
    from tests import leakguard
    from tests.conftest import JWT_SECRET, free_port, start_module, stop

    port = free_port()
    before = set(leakguard._SUBPROCESS_LOGS.glob("*.log"))
    token = issue_dev_token(JWT_SECRET, "user-log")
    leakguard.register(token)
    env = {
        "AUTH_JWT_SECRET": JWT_SECRET,
        "REDIS_URL": redis_url,
        "LOG_FORMAT": "json",
        "YATIVO_BASE_URL": "http://127.0.0.1:9/api/v1",
    }
    process = start_module(["serve", "--host", "127.0.0.1", "--port", str(port)], port, env)
    try:
        response = httpx.get(
            f"http://127.0.0.1:{port}/v1/card-onboarding/grace.hopper@example.com",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert response.status_code == 404
    finally:
        stop(process)
    [log_file] = set(leakguard._SUBPROCESS_LOGS.glob("*.log")) - before
    lines = [json.loads(line) for line in log_file.read_text().splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("event") == "request"]
    assert requests and requests[-1]["path"] == "/v1/card-onboarding/gr***@example.com"
    assert requests[-1]["status"] == 404 and requests[-1]["request_id"]
    assert "grace.hopper@example.com" not in log_file.read_text()
    assert token not in log_file.read_text()
