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


# --- reading a request body: after the step check, with messages written for the person at the screen ----------

BODY_OF_ROUTE: dict[str, type[msgspec.Struct]] = {
    "start": StartRequest,
    "verify_email": CodeRequest,
    "source_of_funds": SourceOfFundsRequest,
    "phone": PhoneRequest,
    "verify_phone": CodeRequest,
}
# (route, field) -> what to tell the person; a field's own code where it has one.
FIELD_MESSAGES: dict[tuple[str, str], str] = {
    ("start", "email"): "Enter your email address, like name@example.com.",
    ("verify_email", "code"): "Enter the 6-digit code from the email.",
    ("verify_phone", "code"): "Enter the 6-digit code from the text message.",
    ("phone", "phoneNumber"): "Enter your mobile number with its country code, like +14155552671.",
    ("source_of_funds", "answers"): "Answer each question with one of the options offered.",
}
FIELD_CODES = {"code": "otp_format_invalid", "email": "email_invalid"}
_AT = re.compile(r"at `\$\.([A-Za-z_][A-Za-z0-9_.\[\]]*)`")
_MISSING = re.compile(r"missing required field `([A-Za-z_][A-Za-z0-9_]*)`")
_UNKNOWN = re.compile(r"unknown field `([^`]{1,64})`")


class BadInput(msgspec.Struct, frozen=True):
    """Why a body cannot be used: a stable code and, per field, what to tell the person."""

    code: str
    errors: tuple[tuple[str, str], ...]


def _json_media_type(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def parse_body(route: str, content_type: str | None, body: bytes) -> msgspec.Struct | BadInput:
    """The route's request body (an email in its normal form), or why it cannot be used. Never echoes the value
    that was sent."""
    kind = BODY_OF_ROUTE[route]
    fields = tuple(kind.__struct_encode_fields__)
    example = ", ".join(f'"{f}"' for f in fields)
    if not body.strip():
        return BadInput("malformed_body", (("body", f"Send a JSON object with {example}."),))
    if not _json_media_type(content_type):
        return BadInput(
            "unsupported_media_type", (("body", "Send the body as JSON (Content-Type: application/json)."),)
        )
    try:
        value = msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        return _invalid(route, str(exc), fields)
    except msgspec.DecodeError:
        return BadInput(
            "malformed_body", (("body", f"The body is not valid JSON: send a JSON object with {example}."),)
        )
    if isinstance(value, StartRequest):
        email = normalize_email(value.email)
        if email is None:
            return BadInput("email_invalid", (("email", FIELD_MESSAGES[("start", "email")]),))
        return StartRequest(email=email)  # the one normal form, from here on
    return value


def _invalid(route: str, message: str, fields: tuple[str, ...]) -> BadInput:
    unknown = _UNKNOWN.search(message)
    if unknown is not None:
        return BadInput(
            "validation_failed",
            (("body", "Remove the fields this step does not take: send only " + ", ".join(fields) + "."),),
        )
    at = _AT.search(message)
    missing = _MISSING.search(message)
    field = at.group(1) if at is not None else (missing.group(1) if missing is not None else None)
    top = re.split(r"[.\[]", field, maxsplit=1)[0] if field else None
    if field is None or top not in fields:
        return BadInput("validation_failed", (("body", "Send a JSON object with " + ", ".join(fields) + "."),))
    text = FIELD_MESSAGES.get((route, top), "Check this field and send it again.")
    return BadInput(FIELD_CODES.get(top, "validation_failed"), ((field, text),))
