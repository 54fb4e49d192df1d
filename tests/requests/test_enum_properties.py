"""Proto3 enums are open: every enum field of a request rejects numbers it does not know."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cadenza.kit.errors import InvalidArgument
from tests.requests.fields import field_at, reachable_fields, request_types, set_path
from tests.requests.ranges import ENUMS, EnumField

IDS = [e.field for e in ENUMS]


def test_every_enum_request_field_is_listed() -> None:
    enums = {f.full_name for root in request_types() for f in reachable_fields(root)
             if f.enum_type is not None}
    assert enums == {e.field for e in ENUMS}


def _check(enum: EnumField, number: int) -> InvalidArgument | None:
    request = enum.base() if enum.base else enum.root()
    set_path(request, enum.path, number)
    try:
        enum.check(request)
    except InvalidArgument as error:
        return error
    return None


@pytest.mark.parametrize("enum", ENUMS, ids=IDS)
def test_known_values_pass_this_check(enum: EnumField) -> None:
    descriptor = field_at(enum.root.DESCRIPTOR, enum.path).enum_type
    for value in descriptor.values:
        if enum.required and value.number == 0:
            continue
        error = _check(enum, value.number)
        # A known value may still need other fields (CONTINUE needs a primer): fine, as
        # long as this field is not the one blamed.
        assert error is None or not error.message.startswith(enum.name), error.message


@pytest.mark.parametrize("enum", ENUMS, ids=IDS)
def test_unknown_values_are_rejected_naming_the_field(enum: EnumField) -> None:
    descriptor = field_at(enum.root.DESCRIPTOR, enum.path).enum_type
    known = {v.number for v in descriptor.values if not (enum.required and v.number == 0)}

    @settings(max_examples=100, derandomize=True, deadline=None)
    @given(st.integers(-2**31, 2**31 - 1).filter(lambda n: n not in known))
    def check(number: int) -> None:
        error = _check(enum, number)
        assert error is not None, f"{enum.path}={number} was accepted"
        assert error.message.startswith(enum.name), error.message

    check()
