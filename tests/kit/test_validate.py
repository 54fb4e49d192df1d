"""Request checks name the field and say what to fix."""

from __future__ import annotations

import math

import pytest

from cadenza.kit.errors import InvalidArgument
from cadenza.kit.validate import check_enum, check_id, check_page_size, check_weights, cut, shown

DEFAULTS = {"timbre": 0.5, "rhythm": 0.5}


def test_weights_merge_with_defaults_and_normalise() -> None:
    merged = check_weights("weights", {"timbre": 3.0}, DEFAULTS)
    assert merged == pytest.approx({"timbre": 3.0 / 3.5, "rhythm": 0.5 / 3.5})


@pytest.mark.parametrize(("weights", "message"), [
    ({"timbre": -1.0}, "weights[timbre]: must be a finite number >= 0"),
    ({"timbre": math.nan}, "weights[timbre]: must be a finite number >= 0"),
    ({"timbre": 0.0, "rhythm": 0.0}, "weights: all weights are zero"),
    ({"tempo": 1.0}, "weights[tempo]: unknown name; use one of rhythm, timbre"),
])
def test_bad_weights_are_rejected_with_the_field_named(weights: dict[str, float],
                                                       message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_weights("weights", weights, DEFAULTS)
    assert caught.value.message.startswith(message)


def test_ids_and_page_sizes() -> None:
    assert check_id("track_id", "bach:bwv-66.6") == "bach:bwv-66.6"
    with pytest.raises(InvalidArgument, match="track_id: is required"):
        check_id("track_id", "")
    with pytest.raises(InvalidArgument, match="not a valid id"):
        check_id("track_id", "has space")
    assert check_page_size("page_size", 0, 10, 100) == 10
    with pytest.raises(InvalidArgument, match="page_size: must be between 1 and 100, got 101"):
        check_page_size("page_size", 101, 10, 100)


def test_weights_of_any_finite_size_normalise_without_overflow() -> None:
    huge = check_weights("weights", {"timbre": 1e308, "rhythm": 1e308}, DEFAULTS)
    assert huge == pytest.approx({"timbre": 0.5, "rhythm": 0.5})
    tiny = check_weights("weights", {"timbre": 5e-324, "rhythm": 0.0}, DEFAULTS)
    assert tiny == {"timbre": 1.0, "rhythm": 0.0}


def test_unknown_enum_numbers_are_rejected_naming_the_choices() -> None:
    known = {0: "default", 1: "wav"}
    labels = {0: "FORMAT_UNSPECIFIED", 1: "FORMAT_WAV"}
    assert check_enum("audio_format", 1, known, labels) == "wav"
    with pytest.raises(InvalidArgument, match=r"audio_format: unknown value 9; use one of "
                                              r"FORMAT_UNSPECIFIED, FORMAT_WAV"):
        check_enum("audio_format", 9, known, labels)


def test_echoed_input_is_cut() -> None:
    assert cut("x" * 41) == "x" * 40 + "..."
    assert shown("ab") == "'ab'"
    long_name = "w" * 10_000
    with pytest.raises(InvalidArgument) as caught:
        check_weights("weights", {long_name: 1.0}, DEFAULTS)
    assert len(caught.value.message) < 200
