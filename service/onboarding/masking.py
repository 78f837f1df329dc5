"""How emails and phone numbers are shown back: enough to recognise, not enough to reuse."""

from __future__ import annotations


def mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:2]}***@{domain}" if domain else "***"


def mask_phone(phone: str) -> str:
    if len(phone) < 7:
        return "***"
    return phone[:3] + "*" * (len(phone) - 5) + phone[-2:]
