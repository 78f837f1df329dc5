"""Service configuration: one frozen Settings struct, read once from the environment."""

from __future__ import annotations

import importlib.util
import ipaddress
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

import msgspec

# The two KYC link shapes the upstream documents: `sumsub_link` on kyc.sumsub.com, `kyc_url` on kyc.yativo.com.
from service.onboarding.kyclink import DEFAULT_KYC_LINK_HOSTS


class ConfigError(Exception):
    """Raised for bad configuration; the message names the variable and never its secret value."""


DEFAULT_YATIVO_BASE_URL = "https://crypto-sandbox.yativo.com/api/v1"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# The local stack's token secret (`python -m service dev`, `dev-token`, docker-compose.yml). Development only: the
# service refuses nothing about it, so never set it outside a laptop.
DEV_JWT_SECRET = "dev-only-secret-never-use-in-production-000"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    yativo_base_url: str = DEFAULT_YATIVO_BASE_URL
    yativo_api_key: str = ""
    yativo_api_secret: str = ""
    # Connect/read/write/pool timeouts for one upstream exchange, in seconds.
    yativo_timeout_seconds: float = 5.0
    # One overall deadline for all the upstream and Redis work of one inbound request.
    request_deadline_seconds: float = 8.0
    # How long starting again with the same email resumes instead of sending a new code.
    email_resend_cooldown_seconds: float = 60.0
    # The time a client has to send a request's headers and body, from its first byte.
    request_read_timeout_seconds: float = 10.0
    yativo_webhook_secret: str = ""
    # Also accepted while a rotation is under way (Yativo signs with the new one as soon as it is rotated).
    yativo_webhook_secret_previous: str = ""
    redis_url: str = DEFAULT_REDIS_URL
    redis_cluster: bool = False
    auth_jwks_url: str = ""
    auth_jwt_secret: str = ""
    auth_issuer: str = ""
    auth_audience: str = ""
    cors_allow_origins: tuple[str, ...] = ()
    # Proxies whose X-Forwarded-For is believed when finding the client address for per-address quotas.
    trusted_proxies: tuple[str, ...] = ()
    # Emails (starts) and SMS (phone requests) per hour, per user and per client address; the reasoning behind
    # the defaults is in service.storage.limits.Quotas. 0 turns a per-address quota off.
    start_quota_per_user: int = 10
    start_quota_per_address: int = 600
    sms_quota_per_user: int = 5
    sms_quota_per_address: int = 300
    # Hosts (and their subdomains) a KYC link handed to a frontend may point at.
    kyc_link_hosts: tuple[str, ...] = DEFAULT_KYC_LINK_HOSTS
    log_level: str = "info"
    log_format: str = ""  # "" = json off a TTY, console on one
    otel_exporter_otlp_endpoint: str = ""  # OTLP/HTTP collector base; tracing is off while empty
    otel_service_name: str = "card-onboarding-bff"

    def __repr__(self) -> str:  # never print secrets, even by accident
        shown = {
            name: ("***" if _is_secret(name) and getattr(self, name) else getattr(self, name))
            for name in self.__struct_fields__
        }
        return f"Settings({shown})"

    __str__ = __repr__


_SECRETS = ("secret", "api_key")


def _is_secret(name: str) -> bool:
    return any(part in name for part in _SECRETS)


_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false")


def _float(env: Mapping[str, str], name: str, default: float, *, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low:g} and {high:g}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}")
    return value


# The in-process store is fakeredis, which only the `memory` extra installs (the production image has none).
MEMORY_EXTRA_HINT = "pip install 'card-onboarding-bff[memory]' (or uv sync --extra memory)"


def _redis_url(env: Mapping[str, str]) -> str:
    url = _url(env, "REDIS_URL", DEFAULT_REDIS_URL, ("redis", "rediss", "unix", "memory"))
    if url.startswith("memory://") and importlib.util.find_spec("fakeredis") is None:
        raise ConfigError(f"REDIS_URL=memory:// needs the 'memory' extra (fakeredis): {MEMORY_EXTRA_HINT}")
    return url


def _url(env: Mapping[str, str], name: str, default: str, schemes: tuple[str, ...]) -> str:
    value = env.get(name, default).strip()
    if not value:
        return value
    parts = urlsplit(value)
    if parts.scheme not in schemes or (parts.scheme != "memory" and not parts.netloc):
        raise ConfigError(f"{name} must be a URL with scheme {' or '.join(schemes)}")
    return value


_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def _hosts(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    hosts = tuple(h.strip().lower().rstrip(".") for h in raw.split(",") if h.strip())
    if not all(_HOST.match(h) for h in hosts):
        raise ConfigError(f"{name} must be a comma-separated list of host names like sumsub.com")
    return hosts


def load_settings(env: Mapping[str, str], *, require_auth: bool = True) -> Settings:
    """Read and validate the configuration; raises ConfigError naming the first bad variable."""
    base_url = _url(env, "YATIVO_BASE_URL", DEFAULT_YATIVO_BASE_URL, ("https", "http")).rstrip("/")
    jwks_url = _url(env, "AUTH_JWKS_URL", "", ("https", "http"))
    jwt_secret = env.get("AUTH_JWT_SECRET", "")
    if require_auth and not jwks_url and not jwt_secret:
        raise ConfigError("AUTH_JWKS_URL or AUTH_JWT_SECRET must be set")
    if jwt_secret and len(jwt_secret.encode()) < 32:
        # RFC 7518 §3.2: an HS256 key must be at least as long as the hash output.
        raise ConfigError("AUTH_JWT_SECRET must be at least 32 bytes long")
    log_level = env.get("LOG_LEVEL", "info").strip().lower() or "info"
    if log_level not in _LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}")
    log_format = env.get("LOG_FORMAT", "").strip().lower()
    if log_format not in ("", "json", "console"):
        raise ConfigError("LOG_FORMAT must be json or console")
    origins = tuple(o.strip() for o in env.get("CORS_ALLOW_ORIGINS", "").split(",") if o.strip())
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise ConfigError(
                "CORS_ALLOW_ORIGINS must be a comma-separated list of origins like https://app.example.com"
            )
    proxies = tuple(p.strip() for p in env.get("TRUSTED_PROXIES", "").split(",") if p.strip())
    for proxy in proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError("TRUSTED_PROXIES must be a comma-separated list of addresses or CIDR ranges") from None
    webhook_secret = env.get("YATIVO_WEBHOOK_SECRET", "")
    webhook_previous = env.get("YATIVO_WEBHOOK_SECRET_PREVIOUS", "")
    for name, value in (
        ("YATIVO_WEBHOOK_SECRET", webhook_secret),
        ("YATIVO_WEBHOOK_SECRET_PREVIOUS", webhook_previous),
    ):
        if value and len(value.encode()) < 16:
            raise ConfigError(f"{name} must be at least 16 bytes long")
    if webhook_previous and not webhook_secret:
        raise ConfigError("YATIVO_WEBHOOK_SECRET_PREVIOUS needs YATIVO_WEBHOOK_SECRET")
    kyc_link_hosts = _hosts(env, "KYC_LINK_HOSTS", DEFAULT_KYC_LINK_HOSTS)
    return Settings(
        yativo_base_url=base_url,
        yativo_api_key=env.get("YATIVO_API_KEY", ""),
        yativo_api_secret=env.get("YATIVO_API_SECRET", ""),
        yativo_timeout_seconds=_float(env, "YATIVO_TIMEOUT_SECONDS", 5.0, low=0.1, high=60.0),
        request_deadline_seconds=_float(env, "REQUEST_DEADLINE_SECONDS", 8.0, low=0.5, high=60.0),
        email_resend_cooldown_seconds=_float(env, "EMAIL_RESEND_COOLDOWN_SECONDS", 60.0, low=0.0, high=3600.0),
        request_read_timeout_seconds=_float(env, "REQUEST_READ_TIMEOUT_SECONDS", 10.0, low=0.5, high=120.0),
        yativo_webhook_secret=webhook_secret,
        yativo_webhook_secret_previous=webhook_previous,
        redis_url=_redis_url(env),
        redis_cluster=_bool(env, "REDIS_CLUSTER", False),
        auth_jwks_url=jwks_url,
        auth_jwt_secret=jwt_secret,
        auth_issuer=env.get("AUTH_ISSUER", "").strip(),
        auth_audience=env.get("AUTH_AUDIENCE", "").strip(),
        cors_allow_origins=origins,
        trusted_proxies=proxies,
        start_quota_per_user=_int(env, "START_QUOTA_PER_USER", 10, low=1, high=1000),
        start_quota_per_address=_int(env, "START_QUOTA_PER_ADDRESS", 600, low=0, high=1_000_000),
        sms_quota_per_user=_int(env, "SMS_QUOTA_PER_USER", 5, low=1, high=1000),
        sms_quota_per_address=_int(env, "SMS_QUOTA_PER_ADDRESS", 300, low=0, high=1_000_000),
        kyc_link_hosts=kyc_link_hosts,
        log_level=log_level,
        log_format=log_format,
        otel_exporter_otlp_endpoint=_url(env, "OTEL_EXPORTER_OTLP_ENDPOINT", "", ("https", "http")),
        otel_service_name=env.get("OTEL_SERVICE_NAME", "").strip() or "card-onboarding-bff",
    )
