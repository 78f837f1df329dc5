"""Request bodies of the onboarding routes: decoding is validation, and the rules are in the OpenAPI document."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

import idna
import msgspec

EMAIL_MAX = 254
CODE_PATTERN = "^[0-9]{6}$"
E164_PATTERN = r"^\+[1-9][0-9]{6,14}$"

Email = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=EMAIL_MAX,
        description="The user's email. Trimmed and lower-cased; IDN domains are accepted.",
        examples=["ada@example.com"],
    ),
]
Code = Annotated[
    str,
    msgspec.Meta(
        pattern=CODE_PATTERN,
        min_length=6,
        max_length=6,
        description="The six-digit code (ASCII digits only).",
        examples=["123456"],
    ),
]
Phone = Annotated[
    str,
    msgspec.Meta(
        pattern=E164_PATTERN,
        min_length=8,
        max_length=16,
        description="E.164, e.g. +14155552671.",
        examples=["+14155552671"],
    ),
]
Short = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class StartRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    email: Email


class CodeRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    code: Code


class SofAnswerInput(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    question: Annotated[str, msgspec.Meta(min_length=1, max_length=64, description="A question `id` offered.")]
    answer: Annotated[str, msgspec.Meta(min_length=1, max_length=128, description="One of that question's options.")]


class SourceOfFundsRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    answers: Annotated[list[SofAnswerInput], msgspec.Meta(min_length=1, max_length=20)]


class PhoneRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename="camel"):
    phone_number: Phone


_LOCAL = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalize_email(raw: str) -> str | None:
    """The one normal form of an email, or None if it is not a deliverable address.

    Trimmed, lower-cased, IDN domain in ASCII (punycode); control and bidi-override characters refused.
    """
    value = raw.strip()
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in value):
        return None
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or len(local) > 64:
        return None
    local = local.lower()
    if not _LOCAL.match(local):
        return None
    try:
        domain = idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return None
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        return None
    email = f"{local}@{domain}"
    return email if len(email) <= EMAIL_MAX else None
