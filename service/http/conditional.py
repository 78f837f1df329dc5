"""Conditional GET of the caller's state: an ETag of the encoded answer, and 304 when the client already has it."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from litestar import Response

from service.http.middleware import REVALIDATE

_encode = msgspec.json.Encoder().encode

# The browser may keep the answer for this user only (`private`) and must ask again before each use (`no-cache`):
# a poll then costs a 304 without a body instead of the same state again. The outer middleware adds
# `Vary: Authorization` to this policy, because the same URL answers every user, told apart by the token.
_HEADERS = {"Cache-Control": REVALIDATE.decode()}


def etag_of(body: bytes) -> str:
    """A strong validator: the answer's exact bytes, hashed once (a 128-bit digest is ample for one user's states)."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2: weak comparison, a list of tags or `*`."""
    if not if_none_match:
        return False
    opaque = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == opaque:
            return True
    return False


def conditional(state: Any, if_none_match: str | None) -> Response[Any]:
    """The state encoded once; the same bytes give the ETag, and a matching If-None-Match gives a bare 304."""
    body = _encode(state)
    etag = etag_of(body)
    headers = {**_HEADERS, "ETag": etag}
    if matches(if_none_match, etag):
        return Response(content=None, status_code=304, headers=headers)
    return Response(content=body, status_code=200, media_type="application/json", headers=headers)
