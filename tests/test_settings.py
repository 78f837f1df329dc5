"""Configuration: read once, validated, and a bad value named without its secret."""

from __future__ import annotations

import subprocess
import sys

import pytest

from service.settings import ConfigError, load_settings
from tests.conftest import ROOT

SECRET = "s" * 32


def test_defaults_follow_the_contract() -> None:
    settings = load_settings({"AUTH_JWT_SECRET": SECRET})
    assert settings.yativo_base_url == "https://crypto-sandbox.yativo.com/api/v1"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.redis_cluster is False
    assert settings.cors_allow_origins == ()
    assert settings.log_level == "info"


def test_values_are_parsed_and_trimmed() -> None:
    settings = load_settings(
        {
            "AUTH_JWKS_URL": "https://id.example.com/.well-known/jwks.json",
            "YATIVO_BASE_URL": "http://127.0.0.1:8090/api/v1/",
            "REDIS_URL": "memory://",
            "REDIS_CLUSTER": "TRUE",
            "CORS_ALLOW_ORIGINS": "https://app.example.com, https://m.example.com",
            "LOG_LEVEL": "DEBUG",
        }
    )
    assert settings.yativo_base_url == "http://127.0.0.1:8090/api/v1"
    assert settings.redis_url == "memory://"
    assert settings.redis_cluster is True
    assert settings.cors_allow_origins == ("https://app.example.com", "https://m.example.com")
    assert settings.log_level == "debug"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "AUTH_JWKS_URL or AUTH_JWT_SECRET"),
        ({"AUTH_JWT_SECRET": "short"}, "AUTH_JWT_SECRET"),
        ({"AUTH_JWT_SECRET": SECRET, "REDIS_URL": "mysql://x"}, "REDIS_URL"),
        ({"AUTH_JWT_SECRET": SECRET, "YATIVO_BASE_URL": "ftp://x"}, "YATIVO_BASE_URL"),
        ({"AUTH_JWT_SECRET": SECRET, "REDIS_CLUSTER": "maybe"}, "REDIS_CLUSTER"),
        ({"AUTH_JWT_SECRET": SECRET, "LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"AUTH_JWT_SECRET": SECRET, "LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"AUTH_JWT_SECRET": SECRET, "CORS_ALLOW_ORIGINS": "*"}, "CORS_ALLOW_ORIGINS"),
        ({"AUTH_JWT_SECRET": SECRET, "YATIVO_TIMEOUT_SECONDS": "0"}, "YATIVO_TIMEOUT_SECONDS"),
        ({"AUTH_JWT_SECRET": SECRET, "REQUEST_READ_TIMEOUT_SECONDS": "0"}, "REQUEST_READ_TIMEOUT_SECONDS"),
        ({"AUTH_JWT_SECRET": SECRET, "START_QUOTA_PER_USER": "0"}, "START_QUOTA_PER_USER"),
        ({"AUTH_JWT_SECRET": SECRET, "SMS_QUOTA_PER_ADDRESS": "lots"}, "SMS_QUOTA_PER_ADDRESS"),
        ({"AUTH_JWT_SECRET": SECRET, "START_QUOTA_PER_ADDRESS": "-1"}, "START_QUOTA_PER_ADDRESS"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert named in str(caught.value)


def test_the_sending_quotas_are_read_from_the_environment() -> None:
    settings = load_settings(
        {
            "AUTH_JWT_SECRET": SECRET,
            "START_QUOTA_PER_USER": "3",
            "START_QUOTA_PER_ADDRESS": "0",
            "SMS_QUOTA_PER_USER": "2",
            "SMS_QUOTA_PER_ADDRESS": " 1000 ",
        }
    )
    quotas = (
        settings.start_quota_per_user,
        settings.start_quota_per_address,
        settings.sms_quota_per_user,
        settings.sms_quota_per_address,
    )
    assert quotas == (3, 0, 2, 1000)


def test_secrets_never_appear_in_the_printed_settings() -> None:
    settings = load_settings({"AUTH_JWT_SECRET": SECRET, "YATIVO_API_KEY": "yativo_k3y", "YATIVO_API_SECRET": "sup3r"})
    shown = repr(settings) + str(settings)
    assert SECRET not in shown and "yativo_k3y" not in shown and "sup3r" not in shown


def test_serve_stops_with_one_line_naming_the_variable() -> None:
    env = {"PATH": "/usr/bin:/bin", "AUTH_JWT_SECRET": "tiny-secret-value"}
    done = subprocess.run(
        [sys.executable, "-m", "service", "serve", "--port", "1"], cwd=ROOT, env=env, capture_output=True, timeout=30
    )
    assert done.returncode == 2
    lines = done.stderr.decode().strip().splitlines()
    assert lines == ["configuration error: AUTH_JWT_SECRET must be at least 32 bytes long"]
    assert "tiny-secret-value" not in done.stderr.decode()
