import io

import mido
import pretty_midi

from services.generate.text.lyrics.karaoke import lyric_events, write_karaoke
from services.generate.text.lyrics.phrases import read_melody
from tests.lyrics.midi_builder import midi_bytes, scale_phrase

LINES = [[["Gen", "tle"], ["ri", "ver,"]], [["I"], ["go"], ["home"]]]
TEXT = "Gen-tle ri-ver,\nI go home\n"


def _melody():
    notes = [(0, 1, 48), *((s, d, p + 12) for s, d, p in scale_phrase(0, 4)),
             *scale_phrase(5, 3)]  # a bass note under the first note: not sung
    return read_melody(midi_bytes(notes))


def test_events_mark_word_pieces_with_hyphens_and_line_ends_with_newlines():
    assert lyric_events(LINES) == ["Gen-", "tle ", "ri-", "ver,\n", "I ", "go ", "home\n"]
    assert "".join(lyric_events(LINES)) == TEXT


def test_every_top_voice_note_carries_its_lyric_in_order():
    melody = _melody()
    data = write_karaoke(melody, lyric_events(LINES))
    midi = mido.MidiFile(file=io.BytesIO(data))
    sung = midi.tracks[1]
    tick, pairs, pending = 0, [], None
    for message in sung:
        tick += message.time
        if message.type == "lyrics":
            pending = (tick, message.text)
        elif message.type == "note_on" and message.velocity > 0:
            assert pending is not None and pending[0] == tick
            pairs.append((tick, message.note, pending[1]))
            pending = None
    assert [(t, p) for t, p, _ in pairs] == [(n.start_tick, n.pitch) for n in melody.notes]
    assert "".join(text for _, _, text in pairs) == TEXT


def test_pretty_midi_reads_the_file_back():
    melody = _melody()
    pm = pretty_midi.PrettyMIDI(io.BytesIO(write_karaoke(melody, lyric_events(LINES))))
    (instrument,) = pm.instruments
    assert len(instrument.notes) == len(melody.notes) == len(pm.lyrics)
    assert [round(lyric.time, 6) for lyric in pm.lyrics] == [
        round(note.start, 6) for note in instrument.notes]
    assert "".join(lyric.text for lyric in pm.lyrics) == TEXT
    assert pm.time_signature_changes[0].numerator == 4
    assert abs(pm.get_tempo_changes()[1][0] - 120.0) < 1e-6


def test_the_karaoke_file_is_a_valid_melody_again():
    melody = _melody()
    again = read_melody(write_karaoke(melody, lyric_events(LINES)))
    assert [n.pitch for n in again.notes] == [n.pitch for n in melody.notes]
    assert [len(p) for p in again.phrases] == [len(p) for p in melody.phrases]
