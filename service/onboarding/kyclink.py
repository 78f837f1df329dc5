"""Which identity-verification links may reach a frontend: https, on the KYC provider's hosts, nothing odd."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = ["DEFAULT_KYC_LINK_HOSTS", "described", "first_allowed", "link_allowed"]
# Sumsub's and Yativo's own hosts (the two link shapes the upstream documents); KYC_LINK_HOSTS overrides them.
DEFAULT_KYC_LINK_HOSTS = ("sumsub.com", "yativo.com")
MAX_LINK_LENGTH = 4096


def link_allowed(url: str, hosts: Iterable[str]) -> bool:
    """True when `url` is https on one of `hosts` or a subdomain of one, on the default port, without credentials.

    A frontend opens this link for the user, so anything else (javascript:, http, a look-alike host, a
    `user@host` prefix, a backslash or control character a browser would read differently) is refused.
    """
    if len(url) > MAX_LINK_LENGTH or not url.isascii() or any(ch <= " " or ch in "\\\x7f" for ch in url):
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme != "https" or not host or parts.username is not None or port not in (None, 443):
        return False
    return any(host == allowed or host.endswith("." + allowed) for allowed in hosts)


def first_allowed(candidates: Iterable[str | None], hosts: Iterable[str]) -> str | None:
    hosts = tuple(hosts)
    return next((url for url in candidates if url and link_allowed(url, hosts)), None)


def described(url: str) -> dict[str, str]:
    """For logs: scheme and host only; the query and even the path may carry the user's access token."""
    try:
        parts = urlsplit(url)
        return {"scheme": parts.scheme[:16], "host": (parts.hostname or "")[:100]}
    except ValueError:
        return {"scheme": "", "host": "<unparseable>"}
