"""Property tests: each numeric request field is accepted inside its range and rejected,
naming the field, at and beyond every edge (NaN, inf, huge, negative, zero)."""

from __future__ import annotations

import math

import pytest
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cadenza.kit.errors import InvalidArgument
from tests.requests.fields import FLOATS, INTEGER_LIMITS, field_at, set_path, value_type
from tests.requests.ranges import BOUNDS, Bound

IDS = [f"{b.root.__name__}.{b.path}" for b in BOUNDS]
# Seeded (derandomize) so make test is repeatable; a few hundred examples per field.
PROFILE = settings(max_examples=150, derandomize=True, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow])


def _kind(bound: Bound) -> int:
    return value_type(field_at(bound.root.DESCRIPTOR, bound.path))


def _request(bound: Bound, value: float | int) -> Message:
    request = bound.base() if bound.base else bound.root()
    set_path(request, bound.path, value)
    return request


def _limits(bound: Bound) -> tuple[float, float] | tuple[int, int]:
    kind = _kind(bound)
    return INTEGER_LIMITS[kind] if kind in INTEGER_LIMITS else (-math.inf, math.inf)


def _inside(bound: Bound) -> st.SearchStrategy[float] | st.SearchStrategy[int]:
    if _kind(bound) in FLOATS:
        return st.floats(min_value=bound.low, max_value=bound.high, exclude_min=bound.low_open,
                         exclude_max=bound.high_open, allow_nan=False, allow_infinity=False)
    low, high = _limits(bound)
    return st.integers(int(max(low, bound.low if bound.low is not None else low)),
                       int(min(high, bound.high if bound.high is not None else high)))


def _outside_edges(bound: Bound) -> list[float | int]:
    """Just past each bound, the extremes of the type, and the classic bad numbers."""
    low, high = _limits(bound)
    edges: list[float | int] = []
    if _kind(bound) in FLOATS:
        edges += [math.nan, math.inf, -math.inf]
        if bound.low is not None:
            edges += [bound.low if bound.low_open else math.nextafter(bound.low, -math.inf),
                      -1e308, -1.0 if bound.low >= 0 else bound.low - 1]
        if bound.high is not None:
            edges += [bound.high if bound.high_open
                      else math.nextafter(bound.high, math.inf), 1e308]
    else:
        if bound.low is not None and bound.low > low:
            edges += [int(bound.low) - 1, low, -1 if bound.low >= 0 else int(bound.low) - 1]
        if bound.high is not None and bound.high < high:
            edges += [int(bound.high) + 1, high]
    return [e for e in edges if not (bound.zero_ok and e == 0)]


def _outside(bound: Bound) -> st.SearchStrategy[float] | st.SearchStrategy[int] | None:
    low, high = _limits(bound)
    parts: list[st.SearchStrategy[float] | st.SearchStrategy[int]] = []
    if _kind(bound) in FLOATS:
        parts.append(st.sampled_from([math.nan, math.inf, -math.inf]))
        if bound.low is not None:
            parts.append(st.floats(max_value=bound.low, exclude_max=not bound.low_open,
                                   allow_nan=False, allow_infinity=False))
        if bound.high is not None:
            parts.append(st.floats(min_value=bound.high, exclude_min=not bound.high_open,
                                   allow_nan=False, allow_infinity=False))
    else:
        if bound.low is not None and bound.low > low:
            parts.append(st.integers(int(low), int(bound.low) - 1))
        if bound.high is not None and bound.high < high:
            parts.append(st.integers(int(bound.high) + 1, int(high)))
    if not parts:
        return None
    strategy = st.one_of(*parts)
    return strategy.filter(lambda v: v != 0) if bound.zero_ok else strategy


def _inside_edges(bound: Bound) -> list[float | int]:
    low, high = _limits(bound)
    lo = bound.low if bound.low is not None else low
    hi = bound.high if bound.high is not None else high
    edges: list[float | int] = []
    if _kind(bound) in FLOATS:
        lo = math.nextafter(lo, math.inf) if bound.low_open else lo
        hi = math.nextafter(hi, -math.inf) if bound.high_open else hi
        edges += [v for v in (lo, hi, 0.0, -0.0, 5e-324, 1e308, -1e308)
                  if math.isfinite(v) and lo <= v <= hi]
    else:
        edges += [v for v in (int(lo), int(hi), 0, 1, -1) if lo <= v <= hi]
    return edges + ([0] if bound.zero_ok else [])


def _accepts(bound: Bound, value: float | int) -> None:
    request = _request(bound, value)
    try:
        bound.check(request)
    except InvalidArgument as error:
        pytest.fail(f"{bound.path}={value!r} is within the documented range but was "
                    f"rejected: {error.message}")


def _rejects(bound: Bound, value: float | int) -> None:
    request = _request(bound, value)
    with pytest.raises(InvalidArgument) as caught:
        bound.check(request)
    assert caught.value.message.startswith(bound.name), (
        f"{bound.path}={value!r}: the message should name {bound.name!r}: "
        f"{caught.value.message}")


@pytest.mark.parametrize("bound", BOUNDS, ids=IDS)
def test_edges(bound: Bound) -> None:
    for value in _inside_edges(bound):
        _accepts(bound, value)
    for value in _outside_edges(bound):
        _rejects(bound, value)


@pytest.mark.parametrize("bound", BOUNDS, ids=IDS)
def test_values_inside_are_accepted(bound: Bound) -> None:
    @PROFILE
    @given(_inside(bound))
    def check(value: float | int) -> None:
        _accepts(bound, value)

    check()


@pytest.mark.parametrize("bound", [b for b in BOUNDS if _outside(b) is not None],
                         ids=[i for b, i in zip(BOUNDS, IDS, strict=True)
                              if _outside(b) is not None])
def test_values_outside_are_rejected_naming_the_field(bound: Bound) -> None:
    strategy = _outside(bound)
    assert strategy is not None

    @PROFILE
    @given(strategy)
    def check(value: float | int) -> None:
        _rejects(bound, value)

    check()
