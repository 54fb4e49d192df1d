"""Dresses a parsed music21 score for the demo catalog: instruments, tempo, length, MIDI."""

from __future__ import annotations

from dataclasses import dataclass

from music21 import chord, harmony, instrument, meter, note, stream, tempo
from music21.midi import translate


@dataclass(frozen=True)
class Arrangement:
    """How one piece is performed: a GM program per part, a tempo and a loudness."""

    programs: tuple[int, ...]  # one per part, cycling
    tempo_bpm: int  # quarter notes per minute
    velocity: int  # MIDI velocity of every note, 1..127
    max_duration_s: float


@dataclass(frozen=True)
class ArrangedScore:
    """An arranged score with what it turned out as: programs, length and meter."""

    score: stream.Score
    part_programs: tuple[int, ...]  # the program each part actually got
    duration_s: float
    meter: str | None  # first time signature, e.g. "3/4"


def arrange(source: stream.Score, arrangement: Arrangement) -> ArrangedScore:
    """A new score holding only the pitched notes of `source`, performed as arranged.

    The notes are moved, not copied: `source` is not usable afterwards.

    Each part is flattened (voices, measures and repeats markers go), given its program,
    the tempo and the velocity, and cut at `max_duration_s` so rendering stays cheap.
    Notes sounding across the cut are shortened to end on it.
    """
    limit_ql = arrangement.max_duration_s * arrangement.tempo_bpm / 60.0
    score = stream.Score()
    programs: list[int] = []
    for index, part in enumerate(source.parts):
        program = arrangement.programs[index % len(arrangement.programs)]
        notes = _clipped_notes(part, limit_ql, arrangement.velocity)
        if not notes:
            continue
        arranged_part = stream.Part()  # type: ignore[no-untyped-call]
        player = instrument.instrumentFromMidiProgram(program)
        player.midiProgram = program  # music21 maps some programs to a near relative
        arranged_part.insert(0, player)
        arranged_part.insert(0, tempo.MetronomeMark(number=arrangement.tempo_bpm))
        for offset, pitched in notes:
            arranged_part.insert(offset, pitched)
        score.insert(0, arranged_part)
        programs.append(program)
    duration_s = float(score.highestTime) * 60.0 / arrangement.tempo_bpm
    return ArrangedScore(score, tuple(programs), duration_s, _first_meter(source))


def midi_bytes(score: stream.Score) -> bytes:
    """The score as Standard MIDI File bytes."""
    return translate.streamToMidiFile(score).writestr()


def _clipped_notes(
    part: stream.Part, limit_ql: float, velocity: int
) -> list[tuple[float, note.NotRest]]:
    notes: list[tuple[float, note.NotRest]] = []
    for element in part.flatten().notes:
        # Chord symbols are annotations (they would double the harmony); grace notes have
        # no duration; unpitched percussion would land on a melodic channel.
        if isinstance(element, harmony.ChordSymbol):
            continue
        if not isinstance(element, note.Note | chord.Chord) or element.quarterLength <= 0:
            continue
        offset = float(element.offset)
        if offset >= limit_ql:
            continue
        # The source score is thrown away after arranging, so its notes are reused rather
        # than deep-copied (copying was a fifth of the cost of a piece).
        pitched = element
        if offset + float(pitched.quarterLength) > limit_ql:
            pitched.quarterLength = limit_ql - offset
        pitched.volume.velocity = velocity
        notes.append((offset, pitched))
    return notes


def _first_meter(source: stream.Score) -> str | None:
    signature = source.flatten().getElementsByClass(meter.TimeSignature).first()
    return signature.ratioString if signature is not None else None
