"""MIDI in and out: primers quantised onto the step grid, melodies, and pieces written back."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import mido
import pretty_midi

from cadenza.kit.errors import InvalidArgument
from services.generate.music.tokens import (
    SERVED_VOCABULARY,
    STEPS_PER_QUARTER,
    Note,
    decode,
    encode,
    parse_time_signature,
    steps_per_bar,
)

PRIMER_FIELD = "primer_midi"
DEFAULT_VELOCITY = 80
# Ticks per quarter note of written files: divisible by every grid we use (1, 2, 3, 4, 6,
# 8, 12 steps per quarter), so steps land on exact ticks.
TICKS_PER_QUARTER = 480


@dataclass(frozen=True)
class Primer:
    """An uploaded MIDI file on the step grid; step 0 is the start of a bar."""

    notes: list[Note]
    tempo_bpm: float | None  # None when the file sets no tempo
    time_signature: str | None  # e.g. "3/4"; None when the file has none
    key: tuple[int, bool] | None  # (tonic pitch class, minor); None when the file has none
    n_steps: int  # where the last note ends


def read_primer(data: bytes, *, steps_per_quarter: int = STEPS_PER_QUARTER,
                max_steps: int) -> Primer:
    """Reads a Standard MIDI File into notes on the step grid.

    Positions are quantised in beats through the file's tempo map, so tempo changes do
    not shift the grid. Drums are dropped; unisons merge; pitches outside the piano are
    moved by octaves into it. A pickup that the file marks with a short first bar (its
    first time signature ends before a full bar) is padded so bars start on step 0;
    whole bars of leading silence are dropped. Voices are ranks, highest first, as in
    the token representation.
    """
    if not data:
        raise InvalidArgument(PRIMER_FIELD, "is empty; upload a Standard MIDI File (.mid)")
    midi, tempo_bpm = _parse(data)
    per_tick: float = steps_per_quarter / midi.resolution

    def step_of(seconds: float) -> int:
        ticks: int = midi.time_to_tick(seconds)  # pretty_midi is untyped
        return round(ticks * per_tick)

    raw: list[Note] = []
    for instrument in midi.instruments:
        if instrument.is_drum:
            continue
        for note in instrument.notes:
            start = step_of(note.start)
            end = max(step_of(note.end), start + 1)
            raw.append(Note(_into_piano(note.pitch), start, end))
    if not raw:
        raise InvalidArgument(PRIMER_FIELD, "has no notes outside the drum channel; "
                                            "upload a file with at least one pitched note")
    time_signature, pickup_steps = _time_signature(midi, step_of, steps_per_quarter)
    bar_steps = _bar_steps(time_signature, steps_per_quarter)
    shift = (bar_steps - pickup_steps) % bar_steps if pickup_steps else 0
    first = min(note.start for note in raw) + shift
    shift -= (first // bar_steps) * bar_steps  # drop whole bars of silence
    n_steps = max(note.end for note in raw) + shift
    if n_steps > max_steps:
        raise InvalidArgument(PRIMER_FIELD, (
            f"is {_describe(n_steps, bar_steps)} long; the limit is "
            f"{_describe(max_steps, bar_steps)}; shorten the primer"))
    shifted = [Note(n.pitch, n.start + shift, n.end + shift) for n in raw]
    return Primer(notes=merge_unisons(shifted, n_steps), tempo_bpm=tempo_bpm,
                  time_signature=time_signature, key=_key(midi), n_steps=n_steps)


def merge_unisons(notes: Iterable[Note], n_steps: int) -> list[Note]:
    """Notes as the token representation sees them: one per pitch at a time, voices ranked.

    A strike wins over a held note of the same pitch, which ends where the strike starts.
    """
    return decode(encode(notes, SERVED_VOCABULARY, n_steps=n_steps, eos=False),
                  SERVED_VOCABULARY)


def melody_of(notes: Iterable[Note]) -> list[Note]:
    """The skyline: notes that are the highest sounding pitch where they start, each cut
    where a note at least as high starts; all in voice 0."""
    notes = sorted(notes, key=lambda n: (n.start, -n.pitch, -n.end))
    if not notes:
        return []
    n_steps = max(note.end for note in notes)
    top = [-1] * n_steps  # highest pitch sounding in each step
    onset_top = [-1] * n_steps  # highest pitch struck in each step
    for note in notes:
        onset_top[note.start] = max(onset_top[note.start], note.pitch)
        for step in range(note.start, note.end):
            top[step] = max(top[step], note.pitch)
    melody: list[Note] = []
    for note in notes:
        if top[note.start] != note.pitch or (melody and melody[-1].start == note.start):
            continue
        end = next((step for step in range(note.start + 1, note.end)
                    if onset_top[step] >= note.pitch), note.end)
        melody.append(Note(note.pitch, note.start, end, 0))
    return melody


def write_midi(notes: Iterable[Note], *, steps_per_quarter: int, tempo_bpm: float,
               time_signature: str, key: tuple[int, bool] | None = None,
               programs: Sequence[int] = ()) -> bytes:
    """A type 1 Standard MIDI File: one instrument per voice, with tempo, time signature
    and (optional) key signature events.

    Voice i plays programs[min(i, len(programs) - 1)] (acoustic grand piano when empty);
    channels skip 10, the drum channel. Notes without a velocity play at 80.
    """
    for program in programs:
        if not 0 <= program <= 127:
            raise InvalidArgument("programs", f"{program} is not a General MIDI program "
                                              "(0-127)")
    if TICKS_PER_QUARTER % steps_per_quarter:
        raise ValueError(f"{steps_per_quarter} steps per quarter do not divide "
                         f"{TICKS_PER_QUARTER} ticks")
    numerator, denominator = parse_time_signature(time_signature)
    midi = pretty_midi.PrettyMIDI(resolution=TICKS_PER_QUARTER, initial_tempo=tempo_bpm)
    midi.time_signature_changes.append(pretty_midi.TimeSignature(numerator, denominator, 0.0))
    if key is not None:
        tonic, minor = key
        midi.key_signature_changes.append(
            pretty_midi.KeySignature(tonic % 12 + (12 if minor else 0), 0.0))
    seconds_per_step = 60.0 / tempo_bpm / steps_per_quarter
    by_voice: dict[int, list[Note]] = {}
    for note in notes:
        by_voice.setdefault(note.voice, []).append(note)
    for voice in sorted(by_voice):
        program = programs[min(voice, len(programs) - 1)] if programs else 0
        instrument = pretty_midi.Instrument(program=program, name=f"voice {voice}")
        for note in sorted(by_voice[voice]):
            instrument.notes.append(pretty_midi.Note(
                velocity=int(getattr(note, "velocity", DEFAULT_VELOCITY)), pitch=note.pitch,
                start=note.start * seconds_per_step, end=note.end * seconds_per_step))
        midi.instruments.append(instrument)
    buffer = io.BytesIO()
    midi.write(buffer)
    return buffer.getvalue()


def parse_midi(data: bytes, field: str, what: str
               ) -> tuple[pretty_midi.PrettyMIDI, mido.MidiFile]:
    """The file read by pretty_midi (and the mido file under it); InvalidArgument naming
    `field` for bytes that are not a Standard MIDI File, asking to export `what` again."""
    try:
        file = mido.MidiFile(file=io.BytesIO(data))
        with warnings.catch_warnings():
            # Meta events outside track 0 are common and harmless for our purpose.
            warnings.simplefilter("ignore", RuntimeWarning)
            midi = pretty_midi.PrettyMIDI(mido_object=file)
    except Exception as e:  # mido and pretty_midi raise many types for bad bytes
        raise InvalidArgument(field, f"is not a readable Standard MIDI File ({e}); "
                                     f"export {what} again as .mid") from e
    return midi, file


def _parse(data: bytes) -> tuple[pretty_midi.PrettyMIDI, float | None]:
    """The parsed file and the first tempo it sets (None if it sets none)."""
    midi, file = parse_midi(data, PRIMER_FIELD, "the primer")
    # pretty_midi reports 120 bpm for a file without tempo events: look first.
    sets_tempo = any(message.type == "set_tempo" for track in file.tracks for message in track)
    _, tempi = midi.get_tempo_changes()
    return midi, float(tempi[0]) if sets_tempo else None


def _time_signature(midi: pretty_midi.PrettyMIDI, step_of: Callable[[float], int],
                    steps_per_quarter: int) -> tuple[str | None, int]:
    """The piece's time signature and the length of its pickup in steps (0 if none).

    A pickup shows as a first time signature that is replaced before one of its own
    bars is complete (e.g. 1/4, then 3/4 at beat 1), or that lasts exactly one bar and
    is followed by a different one.
    """
    changes = sorted(midi.time_signature_changes, key=lambda c: c.time)
    if not changes:
        return None, 0
    texts = [f"{c.numerator}/{c.denominator}" for c in changes]
    if len(changes) > 1:
        first_steps = step_of(changes[1].time) - step_of(changes[0].time)
        first_bar = _bar_steps(texts[0], steps_per_quarter)
        if 0 < first_steps < first_bar or (first_steps == first_bar and texts[1] != texts[0]):
            return texts[1], first_steps
    return texts[0], 0


def _bar_steps(time_signature: str | None, steps_per_quarter: int) -> int:
    try:
        return steps_per_bar(time_signature or "4/4", steps_per_quarter)
    except ValueError:  # not a whole number of steps: count 4/4 bars
        return 4 * steps_per_quarter


def _describe(n_steps: int, bar_steps: int) -> str:
    return f"{n_steps} steps ({n_steps / bar_steps:g} bars)"


def _key(midi: pretty_midi.PrettyMIDI) -> tuple[int, bool] | None:
    changes = sorted(midi.key_signature_changes, key=lambda c: c.time)
    if not changes:
        return None
    number = changes[0].key_number
    return number % 12, number >= 12


def _into_piano(pitch: int) -> int:
    while pitch < SERVED_VOCABULARY.low_pitch:
        pitch += 12
    while pitch > SERVED_VOCABULARY.high_pitch:
        pitch -= 12
    return pitch
