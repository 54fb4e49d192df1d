"""Small MIDI files for the generate tests, written with pretty_midi (not our writer)."""

from __future__ import annotations

import io

import pretty_midi

from services.generate.music.tokens import Note

STEPS_PER_QUARTER = 4
_CHORDS = ((72, 67, 64, 48), (74, 69, 65, 53), (71, 67, 62, 55), (72, 67, 64, 48))
_MELODY = (67, 67, 69, 71, 72, 71, 69, 67, 65, 64, 62, 60)


def _to_bytes(notes: list[Note], tempo_bpm: float, program: int = 0) -> bytes:
    midi = pretty_midi.PrettyMIDI(initial_tempo=tempo_bpm)
    instrument = pretty_midi.Instrument(program=program)
    step_s = 60.0 / tempo_bpm / STEPS_PER_QUARTER
    for n in notes:
        instrument.notes.append(pretty_midi.Note(velocity=80, pitch=n.pitch,
                                                 start=n.start * step_s, end=n.end * step_s))
    midi.instruments.append(instrument)
    buffer = io.BytesIO()
    midi.write(buffer)
    return buffer.getvalue()


def chorale_primer(bars: int = 2) -> tuple[bytes, list[Note]]:
    """Four voices in half notes, `bars` bars of 4/4 at 120 bpm."""
    notes = []
    for index in range(bars * 2):
        for voice, pitch in enumerate(_CHORDS[index % len(_CHORDS)]):
            notes.append(Note(pitch, index * 8, index * 8 + 8, voice))
    return _to_bytes(notes, 120.0), notes


def melody_midi() -> tuple[bytes, list[Note]]:
    """A 12-note tune in quarter notes at 100 bpm, with one held half note at the end."""
    notes = [Note(pitch, i * 4, i * 4 + 4) for i, pitch in enumerate(_MELODY[:-1])]
    notes.append(Note(_MELODY[-1], len(_MELODY[:-1]) * 4, len(_MELODY[:-1]) * 4 + 8))
    return _to_bytes(notes, 100.0, program=73), notes
