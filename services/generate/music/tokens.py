"""The token representation of polyphonic music shared by training and serving.

See services/generate/README.md for the grammar. In short: a grid of time steps; each
step lists its sounding pitches highest first as ON (struck now) or HOLD (continuing),
then STEP. BAR opens each bar; a preamble names style, key and time signature.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

_TIME_SIGNATURE = re.compile(r"\A([0-9]{1,3})/([0-9]{1,2})\Z")

STEPS_PER_QUARTER = 4
TIME_SIGNATURES = ("4/4", "3/4", "2/4", "2/2", "3/2", "6/8", "3/8", "9/8", "12/8", "6/4",
                   "other")
STYLES = ("chorale", "folk", "classical")
PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


@dataclass(frozen=True, order=True)
class Note:
    """A note on the step grid: sounds from step `start` up to, not including, `end`."""

    pitch: int
    start: int
    end: int
    voice: int = 0


@dataclass(frozen=True)
class Vocabulary:
    """Token ids and the grammar. holds=False, conditioning=False is the JSB vocabulary."""

    holds: bool = True
    conditioning: bool = True
    low_pitch: int = 21
    high_pitch: int = 108
    PAD: int = field(default=0, init=False)
    BOS: int = field(default=1, init=False)
    EOS: int = field(default=2, init=False)
    STEP: int = field(default=3, init=False)
    # Derived in __post_init__ from the fields above; left out of ==, hash and repr.
    _bar: int = field(init=False, repr=False, compare=False)
    _first_key: int = field(init=False, repr=False, compare=False)
    _first_on: int = field(init=False, repr=False, compare=False)
    _first_hold: int = field(init=False, repr=False, compare=False)
    _size: int = field(init=False, repr=False, compare=False)
    _pitches: npt.NDArray[np.int64] = field(init=False, repr=False, compare=False)
    _holds: npt.NDArray[np.bool_] = field(init=False, repr=False, compare=False)
    _at_start: npt.NDArray[np.bool_] = field(init=False, repr=False, compare=False)
    _preamble: npt.NDArray[np.bool_] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.low_pitch <= self.high_pitch <= 127:
            raise ValueError(f"bad pitch range {self.low_pitch}..{self.high_pitch}")
        n_pitches = self.high_pitch - self.low_pitch + 1
        next_id = 4
        bar = -1
        if self.conditioning:
            bar = next_id
            next_id += 1
        first_key = next_id
        if self.conditioning:
            next_id += 24 + len(TIME_SIGNATURES) + len(STYLES)
        first_on = next_id
        next_id += n_pitches
        first_hold = next_id if self.holds else -1
        if self.holds:
            next_id += n_pitches
        object.__setattr__(self, "_bar", bar)
        object.__setattr__(self, "_first_key", first_key)
        object.__setattr__(self, "_first_on", first_on)
        object.__setattr__(self, "_first_hold", first_hold)
        object.__setattr__(self, "_size", next_id)
        pitches = np.full(next_id, -1, dtype=np.int64)
        pitches[first_on:first_on + n_pitches] = np.arange(self.low_pitch, self.high_pitch + 1)
        holds = np.zeros(next_id, dtype=bool)
        if self.holds:
            pitches[first_hold:first_hold + n_pitches] = pitches[first_on:first_on + n_pitches]
            holds[first_hold:first_hold + n_pitches] = True
        # Tokens allowed at a step start besides pitches and STEP.
        at_start = np.zeros(next_id, dtype=bool)
        if self.conditioning:
            at_start[[bar, self.EOS]] = True
        # Preamble tokens are given by the caller, never predicted or scored.
        preamble = np.zeros(next_id, dtype=bool)
        preamble[self.PAD] = preamble[self.BOS] = True
        if self.conditioning:
            preamble[first_key:first_on] = True
        object.__setattr__(self, "_pitches", pitches)
        object.__setattr__(self, "_holds", holds)
        object.__setattr__(self, "_at_start", at_start)
        object.__setattr__(self, "_preamble", preamble)

    # -- ids ---------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Number of token ids."""
        return self._size

    @property
    def BAR(self) -> int:  # a token id, named like the other constants
        """The BAR token id."""
        return self._bar

    @property
    def top(self) -> int:
        """The ceiling at a step start: every pitch is allowed."""
        return self.high_pitch + 1

    @property
    def pitch_table(self) -> npt.NDArray[np.int64]:
        """For each token id, its pitch, or -1 when it is not a pitch token."""
        return self._pitches

    @property
    def hold_table(self) -> npt.NDArray[np.bool_]:
        """For each token id, whether it is a HOLD token."""
        return self._holds

    def _check_pitch(self, pitch: int) -> int:
        if not self.low_pitch <= pitch <= self.high_pitch:
            raise ValueError(f"pitch {pitch} outside {self.low_pitch}..{self.high_pitch}")
        return pitch - self.low_pitch

    def on(self, pitch: int) -> int:
        """The token id that starts `pitch`."""
        return self._first_on + self._check_pitch(pitch)

    def hold(self, pitch: int) -> int:
        """The token id that holds `pitch` on from the step before."""
        if not self.holds:
            raise ValueError("this vocabulary has no HOLD tokens")
        return self._first_hold + self._check_pitch(pitch)

    def key(self, tonic: int, minor: bool) -> int:
        """The token id of a key."""
        self._need_conditioning()
        return self._first_key + tonic % 12 + (12 if minor else 0)

    def time_signature(self, text: str) -> int:
        """The token id of a time signature (`other` outside the list)."""
        self._need_conditioning()
        index = TIME_SIGNATURES.index(text if text in TIME_SIGNATURES else "other")
        return self._first_key + 24 + index

    def style(self, name: str) -> int:
        """The token id of a style."""
        self._need_conditioning()
        if name not in STYLES:
            raise ValueError(f"unknown style {name!r}; one of {', '.join(STYLES)}")
        return self._first_key + 24 + len(TIME_SIGNATURES) + STYLES.index(name)

    def _need_conditioning(self) -> None:
        if not self.conditioning:
            raise ValueError("this vocabulary has no conditioning tokens")

    # -- grammar -------------------------------------------------------------------------
    def ceilings(self, tokens: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """For each position, the pitch the token after it must stay below."""
        pitch = self.pitch_table[np.asarray(tokens)]
        return np.where(pitch >= 0, pitch, self.top)

    def allowed(self, ceilings: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Grammar mask (..., size): which tokens may follow a position with that ceiling."""
        column = np.asarray(ceilings, dtype=np.int64)[..., None]
        pitch = self.pitch_table
        is_step: npt.NDArray[np.bool_] = np.arange(self.size) == self.STEP
        at_top: npt.NDArray[np.bool_] = column == self.top
        mask = (pitch >= 0) & (pitch < column)
        mask = mask | is_step
        return mask | (self._at_start & at_top)

    def scored(self, targets: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Targets a loss or likelihood counts: everything but padding and the preamble."""
        return ~self._preamble[np.asarray(targets, dtype=np.int64)]

    # -- serialisation -------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The vocabulary's settings, as model.json stores them."""
        return {"holds": self.holds, "conditioning": self.conditioning,
                "low_pitch": self.low_pitch, "high_pitch": self.high_pitch, "size": self.size}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Vocabulary:
        """The vocabulary model.json describes; fails when its size disagrees."""
        vocab = cls(holds=bool(data["holds"]), conditioning=bool(data["conditioning"]),
                    low_pitch=int(data["low_pitch"]), high_pitch=int(data["high_pitch"]))
        if "size" in data and int(data["size"]) != vocab.size:
            raise ValueError(f"vocabulary size {data['size']} does not match {vocab.size}")
        return vocab


JSB_VOCABULARY = Vocabulary(holds=False, conditioning=False)
SERVED_VOCABULARY = Vocabulary()


def parse_time_signature(time_signature: str) -> tuple[int, int]:
    """"6/8" -> (6, 8); ValueError for anything else (ASCII digits only: int() would take
    "٦/٨" and "1_000/4" too)."""
    match = _TIME_SIGNATURE.match(time_signature)
    if match is None:
        raise ValueError(f"time signature must look like 3/4, got {time_signature[:40]!r}")
    return int(match.group(1)), int(match.group(2))


def steps_per_bar(time_signature: str, steps_per_quarter: int = STEPS_PER_QUARTER) -> int:
    """Steps in one bar of e.g. "3/4" (12 at 4 steps per quarter) or "6/8" (12)."""
    numerator, denominator = parse_time_signature(time_signature)
    if numerator <= 0 or denominator not in (1, 2, 4, 8, 16, 32):
        raise ValueError(f"unsupported time signature {time_signature[:40]!r}")
    steps = Fraction(numerator * 4, denominator) * steps_per_quarter
    if steps.denominator != 1:
        raise ValueError(f"{time_signature} is not a whole number of steps at "
                         f"{steps_per_quarter} steps per quarter")
    return int(steps)


def _steps(notes: Iterable[Note], n_steps: int) -> list[list[tuple[int, bool]]]:
    """Per step, (pitch, struck now) pairs, highest first; unisons merge, a strike wins."""
    grid: list[dict[int, bool]] = [{} for _ in range(n_steps)]
    for note in notes:
        for step in range(max(note.start, 0), min(note.end, n_steps)):
            struck = step == note.start
            grid[step][note.pitch] = grid[step].get(note.pitch, False) or struck
    return [sorted(step.items(), reverse=True) for step in grid]


def encode(notes: Iterable[Note], vocab: Vocabulary, *, n_steps: int,
           steps_per_bar: int | None = None, style: str | None = None,
           key: tuple[int, bool] | None = None, time_signature: str | None = None,
           eos: bool = True) -> list[int]:
    """Tokens of a piece: the preamble (conditioning vocabularies), bars, steps, EOS."""
    tokens = [vocab.BOS]
    if vocab.conditioning:
        tokens.append(vocab.style(style or "classical"))
        tonic, minor = key if key is not None else (0, False)
        tokens.append(vocab.key(tonic, minor))
        tokens.append(vocab.time_signature(time_signature or "4/4"))
    previous: set[int] = set()
    for index, step in enumerate(_steps(notes, n_steps)):
        if vocab.conditioning and steps_per_bar and index % steps_per_bar == 0:
            tokens.append(vocab.BAR)
        for pitch, struck in step:
            held = not struck and vocab.holds and pitch in previous
            tokens.append(vocab.hold(pitch) if held else vocab.on(pitch))
        tokens.append(vocab.STEP)
        previous = {pitch for pitch, _ in step}
    if eos and vocab.conditioning:
        tokens.append(vocab.EOS)
    return tokens


def encode_frames(frames: Sequence[Sequence[int]], vocab: Vocabulary) -> list[int]:
    """Tokens of a piano roll (one set of pitches per step), as in the JSB benchmark."""
    tokens = [vocab.BOS]
    for frame in frames:
        tokens.extend(vocab.on(int(pitch)) for pitch in sorted(set(frame), reverse=True))
        tokens.append(vocab.STEP)
    return tokens


class NoteTracker:
    """Turns tokens into notes as they arrive; a note is reported when it ends."""

    def __init__(self, vocab: Vocabulary) -> None:
        self.vocab = vocab
        self.step = 0
        self.sounding: set[int] = set()       # pitches of the previous (closed) step
        self._open: dict[int, tuple[int, int]] = {}   # pitch -> (start, voice)
        self._current: list[tuple[int, bool]] = []    # this step so far
        self.bar_opened = False                        # a BAR token opened this step

    def feed(self, token: int) -> list[Note]:
        """Reads one token; returns the notes it completes."""
        pitch = int(self.vocab.pitch_table[token])
        if pitch >= 0:
            self._current.append((pitch, bool(self.vocab.hold_table[token])))
            return []
        if token == self.vocab.STEP:
            return self._close_step()
        if token == self.vocab.EOS:
            return self.finish()
        if token == self.vocab.BAR:
            self.bar_opened = True
        return []  # BOS, BAR and the preamble carry no notes

    @property
    def pending(self) -> list[int]:
        """Pitches of the step being written, in token order (highest first)."""
        return [pitch for pitch, _ in self._current]

    def _close_step(self) -> list[Note]:
        ended: list[Note] = []
        here: dict[int, bool] = {}
        for pitch, held in self._current:
            here[pitch] = here.get(pitch, True) and held
        for pitch in list(self._open):
            if pitch not in here or not here[pitch]:
                start, voice = self._open.pop(pitch)
                ended.append(Note(pitch, start, self.step, voice))
        for voice, pitch in enumerate(sorted(here, reverse=True)):
            if pitch not in self._open:  # struck now, or a HOLD with nothing to hold
                self._open[pitch] = (self.step, voice)
        self.sounding = set(here)
        self._current = []
        self.bar_opened = False
        self.step += 1
        return ended

    def finish(self) -> list[Note]:
        """Ends every open note at the current step (the end of the piece)."""
        ended = [Note(pitch, start, self.step, voice)
                 for pitch, (start, voice) in sorted(self._open.items())]
        self._open.clear()
        return ended


def decode(tokens: Iterable[int], vocab: Vocabulary) -> list[Note]:
    """All notes of a token sequence, sorted by start then pitch (high first)."""
    tracker = NoteTracker(vocab)
    notes: list[Note] = []
    for token in tokens:
        notes.extend(tracker.feed(int(token)))
    notes.extend(tracker.finish())
    return sorted(notes, key=lambda n: (n.start, -n.pitch))


def key_name(tonic: int, minor: bool) -> str:
    """A key as text, e.g. `D minor`."""
    return f"{PITCH_NAMES[tonic % 12]} {'minor' if minor else 'major'}"
