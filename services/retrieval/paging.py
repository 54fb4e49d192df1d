"""Opaque page tokens: what to resume at, bound to the query that issued them.

A token is base64url of (kind, position) and a digest of that and the query, so a
made-up, edited or truncated token, or one from another query, is INVALID_ARGUMENT
rather than an empty page that looks like the end of the catalog (AIP-158). The digest
is a checksum, not a secret: positions are no secret either.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cadenza.kit.errors import InvalidArgument

_CURSOR, _OFFSET = "c", "o"
_DIGEST_BYTES = 8
_NOT_OURS = ("is not a token from a previous response to this query; send the "
             "next_page_token as it was returned, with the same query, or none for page one")


def _digest(kind: str, position: str, query: bytes) -> bytes:
    return hashlib.blake2b(f"{kind}:{position}".encode(), key=_key(query),
                           digest_size=_DIGEST_BYTES).digest()


def _key(query: bytes) -> bytes:
    # blake2b keys are at most 64 bytes: key on a hash of the query.
    return hashlib.blake2b(query, digest_size=32).digest()


def _encode(kind: str, position: str, query: bytes) -> str:
    body = f"{kind}:{position}".encode()
    raw = _digest(kind, position, query) + body
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str, kind: str, query: bytes) -> str:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        digest, body = raw[:_DIGEST_BYTES], raw[_DIGEST_BYTES:].decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidArgument("page_token", _NOT_OURS) from None
    found_kind, _, position = body.partition(":")
    if found_kind != kind or digest != _digest(kind, position, query):
        raise InvalidArgument("page_token", _NOT_OURS)
    return position


def cursor_from_token(token: str, query: bytes) -> str | None:
    """The store cursor a listing page token resumes at; None for the first page ("")."""
    return _decode(token, _CURSOR, query) if token else None


def cursor_token(cursor: str | None, query: bytes) -> str:
    """The page token for a store cursor; "" when there is no next page."""
    return _encode(_CURSOR, cursor, query) if cursor else ""


def offset_from_token(token: str, query: bytes) -> int:
    """The result offset a ranked-search page token resumes at; 0 for the first page ("")."""
    if not token:
        return 0
    position = _decode(token, _OFFSET, query)
    # Only tokens we issued get here, but the check keeps a bug from becoming a crash.
    if not (position.isascii() and position.isdigit()):
        raise InvalidArgument("page_token", _NOT_OURS)
    return int(position)


def offset_token(offset: int | None, query: bytes) -> str:
    """The page token for a result offset; "" when there is no next page."""
    return "" if offset is None else _encode(_OFFSET, str(offset), query)
