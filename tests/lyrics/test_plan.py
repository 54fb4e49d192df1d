import pytest

from services.generate.text.lyrics.domain import LyricsRequest, Section, plan
from tests.lyrics.midi_builder import midi_bytes, scale_phrase


def _lines(scheme, sections):
    return plan(LyricsRequest("rain", scheme, sections=sections)).lines


@pytest.mark.parametrize(("scheme", "earlier"), [
    ("AABB", [(), (0,), (), (2,)]),
    ("ABAB", [(), (), (0,), (1,)]),
    ("ABCB", [(), (), (), (1,)]),
    ("AAAA", [(), (0,), (0, 1), (0, 1, 2)]),
])
def test_each_scheme_pairs_the_lines_of_a_stanza(scheme, earlier):
    lines = _lines(scheme, (Section("verse", 4, 6),))
    assert [line.earlier for line in lines] == earlier
    assert [line.letter for line in lines] == list(scheme)


def test_a_line_that_opens_a_rhyme_knows_its_partners():
    lines = _lines("AAAA", (Section("verse", 4, 6),))
    assert (lines[0].partner_syllables, lines[0].later_partners) == (6, 3)
    assert (lines[3].partner_syllables, lines[3].later_partners) == (0, 0)


def test_stanzas_restart_every_four_lines_and_at_each_section():
    lines = _lines("AABB", (Section("verse", 6, 6), Section("chorus", 2, 5)))
    assert [line.earlier for line in lines] == [(), (0,), (), (2,), (), (4,), (), (6,)]
    assert [line.ends_section for line in lines] == [False] * 5 + [True, False, True]


def test_a_repeated_chorus_repeats_its_words():
    lines = _lines("AABB", (Section("chorus", 2, 5), Section("verse", 2, 6),
                            Section("chorus", 2, 5)))
    assert [line.repeat_of for line in lines] == [None, None, None, None, 0, 1]


def test_a_melody_gives_one_line_per_phrase():
    notes = [*scale_phrase(0, 5), *scale_phrase(6, 3)]
    request = LyricsRequest("rain", "AABB", melody_midi=midi_bytes(notes))
    laid_out = plan(request)
    assert [line.syllables for line in laid_out.lines] == [5, 3]
    assert [len(line.notes) for line in laid_out.lines] == [5, 3]
    assert laid_out.lines[1].earlier == (0,)
    assert laid_out.lines[0].strengths[0].name == "DOWNBEAT"
