"""The melody written back with a lyric meta-event on every note (karaoke style).

The file holds the **sung line only**: the top voice that the lyrics were written for
(chords and other voices of the upload are left out, so every note has its syllable and
nothing else sounds), in the upload's ticks per beat, with its tempo and time signature
events, as a type 1 file: a conductor track and one "Melody" track.

Lyric convention (one `lyrics` meta-event at the tick of each note-on, just before it):

- a syllable that does not end its word ends with "-": "Gen-" "tle";
- a word's last syllable ends with a space: "ri-" "ver ";
- a line's last syllable ends with a newline instead: "flow-" "ing\\n".

So the events joined are exactly the hyphenated lines, each ending in a newline
("Gen-tle ri-ver flow-ing\\n..."). Punctuation stays on its syllable ("ver,").
Text is plain ASCII (the vocabulary is ASCII), which every reader decodes alike.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import mido

from services.generate.text.lyrics.phrases import Melody, MelodyNote

MELODY_CHANNEL = 0


def lyric_events(lines: Sequence[Sequence[Sequence[str]]]) -> list[str]:
    """One lyric text per syllable: lines of words of syllable pieces, marked as above."""
    events: list[str] = []
    for line in lines:
        for w, word in enumerate(line):
            for p, piece in enumerate(word):
                if p < len(word) - 1:
                    events.append(piece + "-")
                elif w < len(line) - 1:
                    events.append(piece + " ")
                else:
                    events.append(piece + "\n")
    return events


def write_karaoke(melody: Melody, lyrics: Sequence[str]) -> bytes:
    """The melody's top voice with `lyrics[i]` on its i-th note, as Standard MIDI bytes."""
    notes: list[MelodyNote] = melody.notes
    if len(lyrics) != len(notes):
        raise ValueError(f"{len(lyrics)} lyrics for {len(notes)} notes")
    conductor: list[tuple[int, int, mido.MetaMessage | mido.Message]] = []
    for tick, tempo in melody.tempos:
        conductor.append((tick, 0, mido.MetaMessage("set_tempo", tempo=tempo)))
    for signature in melody.time_signatures:
        conductor.append((signature.tick, 1, mido.MetaMessage(
            "time_signature", numerator=signature.numerator,
            denominator=signature.denominator)))
    sung: list[tuple[int, int, mido.MetaMessage | mido.Message]] = [
        (0, 0, mido.MetaMessage("track_name", name="Melody")),
        (0, 1, mido.Message("program_change", channel=MELODY_CHANNEL,
                            program=melody.program))]
    for note, text in zip(notes, lyrics, strict=True):
        # Order at one tick: the previous note's off, then the lyric, then the new on.
        sung.append((note.start_tick, 2, mido.MetaMessage("lyrics", text=text)))
        sung.append((note.start_tick, 3, mido.Message(
            "note_on", channel=MELODY_CHANNEL, note=note.pitch, velocity=note.velocity)))
        sung.append((note.end_tick, 1, mido.Message(
            "note_off", channel=MELODY_CHANNEL, note=note.pitch, velocity=0)))
    midi = mido.MidiFile(type=1, ticks_per_beat=melody.ticks_per_beat)
    midi.tracks.append(_track(conductor))
    midi.tracks.append(_track(sung))
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def _track(events: list[tuple[int, int, mido.MetaMessage | mido.Message]]) -> mido.MidiTrack:
    track = mido.MidiTrack()
    now = 0
    for tick, _, message in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(message.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track
