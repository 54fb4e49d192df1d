"""Request checks shared by servicers; each failure names the field and what to fix."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TypeVar

from cadenza.kit.errors import InvalidArgument

_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
T = TypeVar("T")


def cut(text: str, limit: int = 40) -> str:
    """A caller's string as echoed in an error message: at most `limit` characters.

    Error messages travel in trailers (8 KiB by default), so echoing a megabyte of input
    back would turn the caller's mistake into a transport error.
    """
    return text if len(text) <= limit else text[:limit] + "..."


def shown(text: str, limit: int = 40) -> str:
    """A caller's string quoted (repr) in an error message, cut to `limit` characters."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def check_enum(field: str, number: int, known: Mapping[int, T], names: Mapping[int, str]) -> T:
    """The domain value of a proto enum number; InvalidArgument for one this server lacks.

    Proto3 enums are open: an unknown number decodes fine and would otherwise fall
    through to a default, doing something the caller did not ask for.
    """
    if number in known:
        return known[number]
    choices = ", ".join(names[n] for n in known if n in names)
    raise InvalidArgument(field, f"unknown value {number}; use one of {choices}")


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
    zero. Returns the merged weights normalised to sum 1.

    Weights are relative, so any finite size is meaningful: they are scaled by the largest
    before summing, which keeps 1e308 from overflowing and 1e-320 from underflowing.
    """
    merged = dict(known)
    for name, value in weights.items():
        if name not in known:
            raise InvalidArgument(f"{field}[{cut(name)}]",
                                  f"unknown name; use one of {', '.join(sorted(known))}")
        if not math.isfinite(value) or value < 0:
            raise InvalidArgument(f"{field}[{name}]", f"must be a finite number >= 0, got {value}")
        merged[name] = float(value)
    largest = max(merged.values(), default=0.0)
    if largest <= 0:
        raise InvalidArgument(field, "all weights are zero; give at least one a positive weight")
    scaled = {name: value / largest for name, value in merged.items()}
    total = math.fsum(scaled.values())
    return {name: value / total for name, value in scaled.items()}
