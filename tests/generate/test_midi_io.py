"""MIDI in and out: primers onto the step grid, the skyline melody, pieces written back."""

from __future__ import annotations

import io

import mido
import pytest

from cadenza.kit.errors import InvalidArgument
from services.generate.music.midi_io import melody_of, read_primer, write_midi
from services.generate.music.tokens import Note

CHORALE_BAR = [  # four voices, ranked highest first at each start, as the model writes them
    Note(72, 0, 4, 0), Note(67, 0, 8, 1), Note(64, 0, 2, 2), Note(48, 0, 16, 3),
    Note(74, 4, 8, 0), Note(62, 2, 4, 2), Note(60, 4, 8, 2),
    Note(76, 8, 16, 0), Note(67, 8, 12, 1), Note(64, 12, 16, 1), Note(60, 8, 16, 2),
]


def written(notes, **controls):
    options = {"steps_per_quarter": 4, "tempo_bpm": 100.0, "time_signature": "4/4"}
    return write_midi(notes, **(options | controls))


def midi_file(*tracks, ticks_per_beat=480):
    """A type 1 file from tracks of (absolute tick, message) pairs."""
    file = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    for events in tracks:
        track = mido.MidiTrack()
        now = 0
        for tick, message in sorted(events, key=lambda e: e[0]):
            track.append(message.copy(time=tick - now))
            now = tick
        file.tracks.append(track)
    buffer = io.BytesIO()
    file.save(file=buffer)
    return buffer.getvalue()


def note_events(pitch, start_tick, end_tick, channel=0):
    return [(start_tick, mido.Message("note_on", note=pitch, velocity=90, channel=channel)),
            (end_tick, mido.Message("note_off", note=pitch, velocity=0, channel=channel))]


def test_written_piece_reads_back_with_the_same_notes_and_voices():
    primer = read_primer(written(CHORALE_BAR), max_steps=64)

    assert sorted(primer.notes) == sorted(CHORALE_BAR)
    assert primer.n_steps == 16
    assert primer.tempo_bpm == pytest.approx(100.0)
    assert primer.time_signature == "4/4"


def test_held_note_and_restruck_note_stay_different_through_a_file():
    held = read_primer(written([Note(60, 0, 8)]), max_steps=64)
    restruck = read_primer(written([Note(60, 0, 4), Note(60, 4, 8)]), max_steps=64)

    assert held.notes == [Note(60, 0, 8)]
    assert restruck.notes == [Note(60, 0, 4), Note(60, 4, 8)]


def test_key_and_time_signature_are_written_and_read():
    primer = read_primer(written(CHORALE_BAR[:4], time_signature="3/4", key=(2, True),
                                 tempo_bpm=72.0), max_steps=64)

    assert primer.time_signature == "3/4"
    assert primer.key == (2, True)
    assert primer.tempo_bpm == pytest.approx(72.0)


def test_pickup_marked_by_a_short_first_bar_is_padded_to_a_bar_start():
    meta = [(0, mido.MetaMessage("time_signature", numerator=1, denominator=4)),
            (0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(90))),
            (0, mido.MetaMessage("key_signature", key="Dm")),
            (480, mido.MetaMessage("time_signature", numerator=3, denominator=4))]
    notes = note_events(67, 0, 480) + note_events(72, 480, 1440)

    primer = read_primer(midi_file(meta, notes), max_steps=64)

    # One beat of pickup in 3/4: eight silent steps, then the downbeat at step 12.
    assert primer.notes == [Note(67, 8, 12), Note(72, 12, 20)]
    assert primer.time_signature == "3/4"
    assert primer.tempo_bpm == pytest.approx(90.0)
    assert primer.key == (2, True)


def test_grid_follows_beats_through_a_tempo_change():
    meta = [(0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(60))),
            (4 * 480, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(180)))]
    notes = note_events(60, 0, 480) + note_events(64, 6 * 480, 7 * 480)

    primer = read_primer(midi_file(meta, notes), max_steps=64)

    assert primer.notes == [Note(60, 0, 4), Note(64, 24, 28)]
    assert primer.tempo_bpm == pytest.approx(60.0)


def test_file_without_meta_events_reports_no_tempo_key_or_time_signature():
    primer = read_primer(midi_file(note_events(60, 0, 480)), max_steps=64)

    assert (primer.tempo_bpm, primer.key, primer.time_signature) == (None, None, None)


def test_drums_are_dropped_and_unisons_merge():
    drums = note_events(36, 0, 480, channel=9)
    doubled = note_events(60, 0, 960, channel=0) + note_events(60, 0, 480, channel=1)

    primer = read_primer(midi_file(drums, doubled), max_steps=64)

    assert primer.notes == [Note(60, 0, 8)]


def test_whole_bars_of_leading_silence_are_dropped():
    primer = read_primer(midi_file(note_events(60, 9 * 480, 10 * 480)), max_steps=64)

    assert primer.notes == [Note(60, 4, 8)]


@pytest.mark.parametrize(("data", "says"), [
    (b"", "empty"),
    (b"not a midi file at all", "not a readable"),
    (midi_file(note_events(60, 0, 480))[:30], "not a readable"),
    (midi_file([(0, mido.MetaMessage("set_tempo", tempo=500000))]), "no notes"),
    (midi_file(note_events(36, 0, 480, channel=9)), "no notes"),
    (midi_file(note_events(60, 0, 480 * 40)), "limit is 64 steps (4 bars)"),
])
def test_bad_primer_is_rejected_naming_the_field_and_the_fix(data, says):
    with pytest.raises(InvalidArgument) as caught:
        read_primer(data, max_steps=64)

    assert caught.value.field == "primer_midi"
    assert says in caught.value.message


def test_each_voice_gets_its_program_on_a_channel_other_than_drums():
    notes = [Note(80 - voice, 0, 4, voice) for voice in range(12)]

    file = mido.MidiFile(file=io.BytesIO(written(notes, programs=[73, 71, 42])))

    programs = [m.program for t in file.tracks for m in t if m.type == "program_change"]
    channels = {m.channel for t in file.tracks for m in t if m.type == "note_on"}
    assert programs == [73, 71] + [42] * 10
    assert 9 not in channels and len(channels) == 12


def test_notes_default_to_piano_at_velocity_80():
    file = mido.MidiFile(file=io.BytesIO(written([Note(60, 0, 4)])))

    messages = [m for t in file.tracks for m in t]
    assert [m.program for m in messages if m.type == "program_change"] == [0]
    assert [m.velocity for m in messages if m.type == "note_on" and m.velocity] == [80]


def test_program_outside_general_midi_is_rejected():
    with pytest.raises(InvalidArgument) as caught:
        written([Note(60, 0, 4)], programs=[128])

    assert caught.value.field == "programs"


def test_melody_is_the_top_note_cut_where_a_higher_one_starts():
    notes = [Note(60, 0, 8), Note(55, 0, 16), Note(64, 4, 6), Note(67, 8, 12),
             Note(65, 9, 12), Note(62, 12, 16)]

    assert melody_of(notes) == [Note(60, 0, 4), Note(64, 4, 6), Note(67, 8, 12),
                                Note(62, 12, 16)]


def test_melody_skips_inner_notes_struck_under_a_held_top_note():
    notes = [Note(72, 0, 8), Note(60, 0, 4), Note(62, 4, 8)]

    assert melody_of(notes) == [Note(72, 0, 8)]
