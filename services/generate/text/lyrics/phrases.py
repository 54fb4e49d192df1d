"""A melody as lyric lines see it: the top voice, cut into phrases, each note's beat strength.

Reading works on MIDI ticks (mido), never on seconds, so tempo changes do not move bar
lines. Drums (channel 10) are ignored.

- **Top voice**: the highest pitch struck at each onset (onsets closer than a 96th note
  count as one, so a slightly spread chord is one onset); each top note is cut where the
  next one starts, so the line is monophonic. Grace notes are notes like any other: each
  needs its syllable.
- **Beat strength** of an onset, from the time signature in force: DOWNBEAT on the bar
  line; STRONG on the middle beat of a bar of 4 or 6 beats (beat 3 of 4/4, beat 4 of
  12/8); WEAK on the other beats; OFFBEAT between beats. Compound meters (6/8, 9/8, 12/8)
  count dotted-quarter beats. Bars start at every time signature event; a first time
  signature that lasts at most one of its bars and is followed by another one is a
  pickup (music21 writes pickups so), and its notes are placed at the end of a bar of
  the following meter. A file without time signature is read as 4/4 from tick 0.
- **Phrases**: a new phrase starts after a rest of at least an eighth note; after a
  note of at least a half note, when the phrase has `min_notes`; and at a bar line once
  the phrase has `soft_max_notes` (a sung line needs breath). A phrase longer than
  `max_phrase_notes` (a bar too dense to split) is an error: no lyric line can be sung
  that long.
"""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass
from enum import IntEnum

import mido

from cadenza.kit.errors import InvalidArgument

FIELD = "melody_midi"


class Strength(IntEnum):
    """How strong a note's onset is in its bar."""

    OFFBEAT = 0
    WEAK = 1
    STRONG = 2
    DOWNBEAT = 3


@dataclass(frozen=True)
class MelodyNote:
    """One note of the top voice, in the file's ticks."""

    start_tick: int
    end_tick: int
    pitch: int
    velocity: int
    strength: Strength

    @property
    def strong(self) -> bool:
        """Whether the note falls on a downbeat or a strong beat (wants a stressed syllable)."""
        return self.strength >= Strength.STRONG


@dataclass(frozen=True)
class PhraseLimits:
    """What a melody may be and how it is cut into phrases."""

    max_bytes: int = 1 << 20
    max_notes: int = 256
    max_phrases: int = 32
    max_phrase_notes: int = 24
    rest_beats: float = 0.5          # a rest this long (quarters) ends a phrase
    long_note_beats: float = 2.0     # a note this long ends a phrase ...
    min_notes: int = 4               # ... once the phrase has this many notes
    soft_max_notes: int = 8          # past this many notes a bar line ends a phrase


@dataclass(frozen=True)
class TimeSignature:
    """A time signature event."""

    tick: int
    numerator: int
    denominator: int


@dataclass(frozen=True)
class Melody:
    """The top voice of a MIDI file, its phrases, and the file's timing events."""

    ticks_per_beat: int
    phrases: tuple[tuple[MelodyNote, ...], ...]
    tempos: tuple[tuple[int, int], ...]          # (tick, microseconds per quarter)
    time_signatures: tuple[TimeSignature, ...]
    program: int                                  # GM program of the top voice's first note

    @property
    def notes(self) -> list[MelodyNote]:
        """Every top-voice note, in order."""
        return [note for phrase in self.phrases for note in phrase]


@dataclass
class _Raw:
    start: int
    end: int
    pitch: int
    velocity: int
    program: int


def read_melody(data: bytes, limits: PhraseLimits | None = None) -> Melody:
    """The top voice of a Standard MIDI File, cut into phrases.

    Raises InvalidArgument("melody_midi", ...) for an empty, oversized, unreadable or
    note-less file, too many notes or phrases, and a phrase too long to sing.
    """
    limits = limits or PhraseLimits()
    if not data:
        raise InvalidArgument(FIELD, "is empty; send a Standard MIDI File (.mid)")
    if len(data) > limits.max_bytes:
        raise InvalidArgument(FIELD, f"is {len(data)} bytes; the limit is {limits.max_bytes}")
    try:
        midi = mido.MidiFile(file=io.BytesIO(data))
    except Exception as e:  # mido raises many types for bad bytes
        raise InvalidArgument(FIELD, f"is not a readable Standard MIDI File ({e})") from e
    tpb = int(midi.ticks_per_beat)
    if tpb <= 0:
        raise InvalidArgument(FIELD, "uses SMPTE time division; send a file in ticks per beat")
    raw, tempos, signatures = _events(midi)
    if not raw:
        raise InvalidArgument(FIELD, "has no notes outside the drum channel")
    top = _top_voice(raw, tolerance=max(1, tpb // 24))
    if len(top) > limits.max_notes:
        raise InvalidArgument(FIELD, f"has {len(top)} melody notes; the limit is "
                                     f"{limits.max_notes}")
    meter = _Meter(signatures, tpb)
    notes = [MelodyNote(r.start, r.end, r.pitch, r.velocity, meter.strength(r.start))
             for r in top]
    phrases = split_phrases(notes, tpb, limits)
    if len(phrases) > limits.max_phrases:
        raise InvalidArgument(FIELD, f"has {len(phrases)} phrases; the limit is "
                                     f"{limits.max_phrases}")
    for i, phrase in enumerate(phrases):
        if len(phrase) > limits.max_phrase_notes:
            raise InvalidArgument(FIELD, (
                f"phrase {i + 1} has {len(phrase)} notes without a rest or bar line to "
                f"break it; a sung line has at most {limits.max_phrase_notes}"))
    return Melody(tpb, tuple(tuple(p) for p in phrases), tuple(tempos), tuple(signatures),
                  top[0].program)


def split_phrases(notes: list[MelodyNote], ticks_per_beat: int,
                  limits: PhraseLimits) -> list[list[MelodyNote]]:
    """Cuts top-voice notes into phrases at rests, long notes and (late) bar lines."""
    rest = limits.rest_beats * ticks_per_beat
    long_note = limits.long_note_beats * ticks_per_beat
    phrases: list[list[MelodyNote]] = []
    current: list[MelodyNote] = []
    for note in notes:
        if current:
            previous = current[-1]
            if (note.start_tick - previous.end_tick >= rest
                    or (len(current) >= limits.min_notes
                        and previous.end_tick - previous.start_tick >= long_note)
                    or (len(current) >= limits.soft_max_notes
                        and note.strength == Strength.DOWNBEAT)):
                phrases.append(current)
                current = []
        current.append(note)
    if current:
        phrases.append(current)
    return phrases


def _events(midi: mido.MidiFile) -> tuple[list[_Raw], list[tuple[int, int]],
                                          list[TimeSignature]]:
    notes: list[_Raw] = []
    tempos: list[tuple[int, int]] = []
    signatures: dict[int, TimeSignature] = {}
    for track in midi.tracks:
        tick = 0
        programs = [0] * 16
        sounding: dict[tuple[int, int], list[_Raw]] = {}
        for message in track:
            tick += int(message.time)
            kind = message.type
            if kind == "set_tempo":
                tempos.append((tick, int(message.tempo)))
            elif kind == "time_signature":
                signatures[tick] = TimeSignature(tick, int(message.numerator),
                                                 int(message.denominator))
            elif kind == "program_change":
                programs[message.channel] = int(message.program)
            elif kind in ("note_on", "note_off") and message.channel != 9:
                key = (int(message.channel), int(message.note))
                if kind == "note_on" and message.velocity > 0:
                    note = _Raw(tick, -1, key[1], int(message.velocity), programs[key[0]])
                    sounding.setdefault(key, []).append(note)
                    notes.append(note)
                elif sounding.get(key):
                    sounding[key].pop(0).end = tick
        for open_notes in sounding.values():
            for note in open_notes:
                note.end = tick
    notes = [n for n in notes if n.end > n.start]
    return notes, sorted(tempos), [signatures[t] for t in sorted(signatures)]


def _top_voice(notes: list[_Raw], tolerance: int) -> list[_Raw]:
    """The highest note of each onset, cut where the next onset starts."""
    ordered = sorted(notes, key=lambda n: (n.start, -n.pitch))
    top: list[_Raw] = []
    onset = -tolerance - 1
    for note in ordered:
        if note.start - onset > tolerance:
            onset = note.start
            top.append(_Raw(note.start, note.end, note.pitch, note.velocity, note.program))
        elif note.pitch > top[-1].pitch:
            top[-1] = _Raw(top[-1].start, note.end, note.pitch, note.velocity, note.program)
    for a, b in itertools.pairwise(top):
        a.end = min(a.end, b.start)
    return top


class _Meter:
    """Beat strength from the time signature segments."""

    def __init__(self, signatures: list[TimeSignature], ticks_per_beat: int) -> None:
        if not signatures or signatures[0].tick > 0:
            signatures = [TimeSignature(0, 4, 4), *signatures]
        self.signatures = signatures
        self.tpb = ticks_per_beat
        self.tolerance = ticks_per_beat / 24
        first = signatures[0]
        self.pickup_end: int | None = None
        if len(signatures) > 1:
            length = signatures[1].tick - first.tick
            differs = (signatures[1].numerator, signatures[1].denominator) != (
                first.numerator, first.denominator)
            if 0 < length < self._bar(first) or (length == round(self._bar(first))
                                                 and differs):
                self.pickup_end = signatures[1].tick

    def _bar(self, signature: TimeSignature) -> float:
        return signature.numerator * self.tpb * 4 / signature.denominator

    def strength(self, tick: int) -> Strength:
        """The strength of an onset at `tick`."""
        index = max(i for i, s in enumerate(self.signatures) if s.tick <= tick)
        signature = self.signatures[index]
        if index == 0 and self.pickup_end is not None:
            following = self.signatures[1]
            bar = self._bar(following)
            return self._in_bar((bar - (self.pickup_end - tick)) % bar, following)
        return self._in_bar((tick - signature.tick) % self._bar(signature), signature)

    def _in_bar(self, position: float, signature: TimeSignature) -> Strength:
        bar = self._bar(signature)
        if position < self.tolerance or bar - position < self.tolerance:
            return Strength.DOWNBEAT
        beat = self.tpb * 4 / signature.denominator
        n_beats = signature.numerator
        if signature.denominator == 8 and n_beats % 3 == 0 and n_beats > 3:
            beat, n_beats = beat * 3, n_beats // 3
        nearest = round(position / beat)
        if abs(position - nearest * beat) >= self.tolerance:
            return Strength.OFFBEAT
        if n_beats >= 4 and n_beats % 2 == 0 and nearest == n_beats // 2:
            return Strength.STRONG
        return Strength.WEAK
