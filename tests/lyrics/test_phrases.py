import io

import mido
import pytest

from cadenza.kit.errors import InvalidArgument
from services.generate.text.lyrics.phrases import PhraseLimits, Strength, read_melody
from tests.lyrics.midi_builder import midi_bytes, scale_phrase


def _sizes(melody):
    return [len(p) for p in melody.phrases]


def test_the_top_voice_keeps_the_highest_pitch_of_each_onset():
    chords = [(0, 1, 60), (0, 1, 64), (0, 1, 67), (1, 1, 62), (1, 1, 71), (2, 2, 64)]
    melody = read_melody(midi_bytes(chords))
    assert [n.pitch for n in melody.notes] == [67, 71, 64]


def test_a_note_is_cut_where_the_next_onset_starts():
    melody = read_melody(midi_bytes([(0, 3, 72), (1, 1, 60)]))
    first, second = melody.notes
    assert first.end_tick == second.start_tick == 480


def test_drums_are_ignored():
    data = midi_bytes([(0, 1, 36)], channel=9)
    with pytest.raises(InvalidArgument, match="no notes outside the drum channel"):
        read_melody(data)


def test_a_rest_of_an_eighth_ends_a_phrase():
    notes = [*scale_phrase(0, 4), *scale_phrase(4.5, 4)]
    assert _sizes(read_melody(midi_bytes(notes))) == [4, 4]


def test_a_shorter_gap_does_not():
    notes = [*scale_phrase(0, 4, length=0.9)]
    assert _sizes(read_melody(midi_bytes(notes))) == [4]


def test_a_long_note_ends_a_phrase_once_it_has_enough_notes():
    notes = [*scale_phrase(0, 4), (4, 2, 72), *scale_phrase(6, 2), (8, 2, 60)]
    # The half note at beat 4 ends phrase 1 (5 notes); the one at beat 8 ends nothing new.
    assert _sizes(read_melody(midi_bytes(notes))) == [5, 3]


def test_a_long_phrase_breaks_at_the_next_bar_line():
    notes = scale_phrase(0, 20, length=0.5)  # 20 eighths, no rest
    melody = read_melody(midi_bytes(notes))
    assert _sizes(melody) == [8, 8, 4]
    assert all(p[0].strength == Strength.DOWNBEAT for p in melody.phrases)


def test_beat_strength_in_four_four():
    melody = read_melody(midi_bytes(scale_phrase(0, 8, length=0.5)))
    assert [n.strength for n in melody.notes] == [
        Strength.DOWNBEAT, Strength.OFFBEAT, Strength.WEAK, Strength.OFFBEAT,
        Strength.STRONG, Strength.OFFBEAT, Strength.WEAK, Strength.OFFBEAT]
    assert [n.strong for n in melody.notes][:5] == [True, False, False, False, True]


def test_beat_strength_in_three_four():
    melody = read_melody(midi_bytes(scale_phrase(0, 6), signature=(3, 4)))
    assert [int(n.strength) for n in melody.notes] == [3, 1, 1, 3, 1, 1]


def test_compound_meters_count_dotted_quarter_beats():
    melody = read_melody(midi_bytes(scale_phrase(0, 6, length=0.5), signature=(6, 8)))
    assert [int(n.strength) for n in melody.notes] == [3, 0, 0, 1, 0, 0]


def test_a_short_first_time_signature_is_a_pickup():
    # A 1/4 pickup bar, then 3/4: the first note is the last beat of a bar.
    notes = scale_phrase(0, 4)
    melody = read_melody(midi_bytes(notes, signature=(1, 4), extra_signatures=[(1, 3, 4)]))
    assert [int(n.strength) for n in melody.notes] == [1, 3, 1, 1]


def test_no_time_signature_reads_as_four_four():
    melody = read_melody(midi_bytes(scale_phrase(0, 5), signature=None))
    assert [int(n.strength) for n in melody.notes] == [3, 1, 2, 1, 3]


def test_timing_events_are_kept_for_the_karaoke_file():
    melody = read_melody(midi_bytes(scale_phrase(0, 4), signature=(3, 4)))
    assert melody.tempos == ((0, 500_000),)
    assert [(s.numerator, s.denominator) for s in melody.time_signatures] == [(3, 4)]
    assert melody.ticks_per_beat == 480


@pytest.mark.parametrize(("data", "problem"), [
    (b"", "is empty"),
    (b"MThd this is not midi", "not a readable Standard MIDI File"),
    (b"\x00" * (PhraseLimits().max_bytes + 1), "the limit is"),
])
def test_unreadable_melodies_name_the_field(data, problem):
    with pytest.raises(InvalidArgument, match=problem) as caught:
        read_melody(data)
    assert caught.value.field == "melody_midi"


def test_a_file_without_notes_is_refused():
    empty = mido.MidiFile()
    empty.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500_000)]))
    buffer = io.BytesIO()
    empty.save(file=buffer)
    with pytest.raises(InvalidArgument, match="no notes") as caught:
        read_melody(buffer.getvalue())
    assert caught.value.field == "melody_midi"


def test_too_many_notes_are_refused():
    notes = []
    for phrase in range(30):
        notes += scale_phrase(phrase * 10, 9)  # 270 notes in 30 phrases
    with pytest.raises(InvalidArgument, match="270 melody notes; the limit is 256"):
        read_melody(midi_bytes(notes))


def test_too_many_phrases_are_refused():
    notes = []
    for phrase in range(33):
        notes += scale_phrase(phrase * 4, 2)
    with pytest.raises(InvalidArgument, match="33 phrases; the limit is 32"):
        read_melody(midi_bytes(notes))


def test_a_phrase_too_long_to_sing_is_refused():
    notes = scale_phrase(0, 30, length=0.125)  # 30 32nd notes in one bar
    with pytest.raises(InvalidArgument, match="phrase 1 has 30 notes") as caught:
        read_melody(midi_bytes(notes))
    assert caught.value.field == "melody_midi"
