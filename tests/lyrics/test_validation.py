import pytest

from cadenza.kit.errors import InvalidArgument
from services.generate.text.lyrics.domain import LyricsRequest, Section, plan
from tests.lyrics.midi_builder import midi_bytes, scale_phrase

VERSE = (Section("verse", 4, 8),)


def _field_of(**fields):
    request = LyricsRequest(**{"theme": "rain", "sections": VERSE, **fields})
    with pytest.raises(InvalidArgument) as caught:
        plan(request)
    return caught.value


@pytest.mark.parametrize("theme", ["", "   "])
def test_an_empty_theme_is_refused(theme):
    assert _field_of(theme=theme).field == "theme"


def test_a_theme_over_300_characters_is_refused():
    error = _field_of(theme="x" * 301)
    assert error.field == "theme" and "301 characters; the limit is 300" in error.message


def test_an_unknown_rhyme_scheme_names_the_known_ones():
    error = _field_of(rhyme_scheme="ABBA")
    assert error.field == "rhyme_scheme"
    assert "AABB, ABAB, ABCB, AAAA" in error.message


def test_a_bad_melody_is_refused_with_its_field():
    assert _field_of(sections=(), melody_midi=b"not midi").field == "melody_midi"
    assert _field_of(sections=(), melody_midi=b"").field == "melody_midi"


def test_a_melody_and_sections_together_are_refused():
    melody = midi_bytes(scale_phrase(0, 4))
    assert _field_of(melody_midi=melody).field == "sections"


def test_no_melody_needs_sections():
    assert _field_of(sections=()).field == "sections"


@pytest.mark.parametrize(("section", "field"), [
    (Section("solo", 4, 8), "sections[1].name"),
    (Section("chorus", 0, 8), "sections[1].lines"),
    (Section("chorus", 17, 8), "sections[1].lines"),
    (Section("chorus", 4, 0), "sections[1].syllables_per_line"),
    (Section("chorus", 4, 17), "sections[1].syllables_per_line"),
])
def test_a_bad_section_names_its_index_and_field(section, field):
    assert _field_of(sections=(*VERSE, section)).field == field


def test_too_many_lines_in_all_are_refused():
    sections = tuple(Section("verse", 16, 8) for _ in range(3))
    assert "48 lines; the limit is 32" in _field_of(sections=sections).message


@pytest.mark.parametrize(("fields", "field"), [
    ({"temperature": 0.0}, "temperature"), ({"temperature": 2.5}, "temperature"),
    ({"candidates": 0}, "candidates"), ({"candidates": 33}, "candidates"),
    ({"stress_weight": -1.0}, "stress_weight"),
])
def test_bad_decoding_settings_are_refused(fields, field):
    assert _field_of(**fields).field == field
