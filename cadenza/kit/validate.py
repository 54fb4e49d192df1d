"""Request checks shared by servicers; each failure names the field and what to fix."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from cadenza.kit.errors import InvalidArgument

_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def check_id(field: str, value: str) -> str:
    """An external id: 1-128 characters of letters, digits and . _ : -."""
    if not value:
        raise InvalidArgument(field, "is required")
    if not _ID.match(value):
        raise InvalidArgument(field, f"{value[:40]!r} is not a valid id: use 1-128 characters "
                                     "of letters, digits and . _ : -")
    return value


def check_page_size(field: str, value: int, default: int, maximum: int) -> int:
    """0 means the default; otherwise 1..maximum."""
    if value == 0:
        return default
    if not 1 <= value <= maximum:
        raise InvalidArgument(field, f"must be between 1 and {maximum}, got {value}")
    return value


def check_weights(field: str, weights: Mapping[str, float], known: Mapping[str, float]) -> dict[
        str, float]:
    """Caller weights over the known defaults: names known, values finite and >= 0, not all
    zero. Returns the merged weights normalised to sum 1."""
    merged = dict(known)
    for name, value in weights.items():
        if name not in known:
            raise InvalidArgument(f"{field}[{name}]",
                                  f"unknown name; use one of {', '.join(sorted(known))}")
        if not math.isfinite(value) or value < 0:
            raise InvalidArgument(f"{field}[{name}]", f"must be a finite number >= 0, got {value}")
        merged[name] = float(value)
    total = sum(merged.values())
    if total <= 0:
        raise InvalidArgument(field, "all weights are zero; give at least one a positive weight")
    return {name: value / total for name, value in merged.items()}
