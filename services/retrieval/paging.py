"""Page tokens: "c:<store cursor>" for listings, "o:<offset>" for ranked search; "" ends."""

from __future__ import annotations

from cadenza.kit.errors import InvalidArgument

_NOT_OURS = "is not a token from a previous response"


def cursor_from_token(token: str) -> str | None:
    """The store cursor a listing page token resumes at; None for the first page ("")."""
    if not token:
        return None
    if not token.startswith("c:"):
        raise InvalidArgument("page_token", _NOT_OURS)
    return token[2:]


def cursor_token(cursor: str | None) -> str:
    """The page token for a store cursor; "" when there is no next page."""
    return f"c:{cursor}" if cursor else ""


def offset_from_token(token: str) -> int:
    """The result offset a ranked-search page token resumes at; 0 for the first page ("")."""
    if not token:
        return 0
    if not token.startswith("o:") or not token[2:].isdigit():
        raise InvalidArgument("page_token", _NOT_OURS)
    return int(token[2:])


def offset_token(offset: int | None) -> str:
    """The page token for a result offset; "" when there is no next page."""
    return "" if offset is None else f"o:{offset}"
