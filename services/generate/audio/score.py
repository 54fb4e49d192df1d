"""Scores for the synthesiser: a MIDI file as voices of monophonic lines, and their controls.

The network plays one monophonic line at a time from f0 and loudness per frame. A score
gives notes, so f0 comes from the pitches (controls.f0_from_notes) and loudness from the
voice's fitted envelope: the attack curve by frames since each onset, shifted by
db_per_velocity * (velocity - reference), then the release curve after the note-off; a
note's curve ends where the next note of its line starts, and frames no note reaches sit
at the loudness floor.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from cadenza.kit.errors import InvalidArgument
from services.generate.audio.controls import FRAME_RATE_HZ, LOUDNESS_FLOOR_DB, f0_from_notes
from services.generate.audio.model import Envelope
from services.generate.music.midi_io import parse_midi

Floats = npt.NDArray[np.float32]
FIELD = "midi"
MAX_DURATION_S = 600.0
MAX_VOICES = 16
MAX_LINES = 32          # monophonic lines over all voices: each is one network pass
# Notes of one line may overlap this much (a legato performance); the earlier one is cut
# where the later starts rather than opening a line of its own.
LEGATO_OVERLAP_S = 0.05


@dataclass(frozen=True)
class ScoreNote:
    """One note in seconds."""

    pitch: int
    start_s: float
    end_s: float
    velocity: int


@dataclass(frozen=True)
class Voice:
    """A MIDI instrument track (channel and program) with its notes; 0 = highest voice."""

    index: int
    program: int
    notes: tuple[ScoreNote, ...]

    @property
    def median_pitch(self) -> float:
        """The median MIDI pitch of its notes."""
        return float(statistics.median(n.pitch for n in self.notes))


@dataclass(frozen=True)
class Score:
    """The pitched voices of a MIDI file, highest (by mean pitch) first."""

    voices: tuple[Voice, ...]
    end_s: float   # where the last note ends


def read_score(data: bytes) -> Score:
    """The voices of a Standard MIDI File; InvalidArgument (field "midi") for a file that is
    not one, has no pitched notes, or is over MAX_DURATION_S, MAX_VOICES or MAX_LINES.

    Drum tracks are left out (they have no pitch). Each pretty_midi instrument (a track's
    channel and program) is one voice.
    """
    if not data:
        raise InvalidArgument(FIELD, "is empty; upload a Standard MIDI File (.mid)")
    midi, _ = parse_midi(data, FIELD, "the score")
    tracks = []
    for instrument in midi.instruments:
        notes = tuple(sorted(
            (ScoreNote(int(n.pitch), float(n.start), float(n.end), int(n.velocity))
             for n in instrument.notes if n.end > n.start),
            key=lambda n: (n.start_s, -n.pitch)))
        if notes and not instrument.is_drum:
            tracks.append((int(instrument.program), notes))
    if not tracks:
        raise InvalidArgument(FIELD, "has no notes (drum tracks do not count); give at least "
                                     "one pitched note")
    if len(tracks) > MAX_VOICES:
        raise InvalidArgument(FIELD, f"has {len(tracks)} voices; at most {MAX_VOICES}")
    end_s = max(n.end_s for _, notes in tracks for n in notes)
    if end_s > MAX_DURATION_S:
        raise InvalidArgument(FIELD, f"the score is {end_s:.1f} s long; at most "
                                     f"{MAX_DURATION_S:g} s")
    ranked = sorted(tracks, key=lambda t: -statistics.fmean(n.pitch for n in t[1]))
    score = Score(tuple(Voice(i, program, notes) for i, (program, notes) in enumerate(ranked)),
                  end_s)
    lines = 0
    for voice in score.voices:
        lines += len(split_lines(voice.notes, limit=MAX_LINES - lines + 1))
    if lines > MAX_LINES:
        raise InvalidArgument(FIELD, f"needs more than {MAX_LINES} monophonic lines (chords "
                                     f"are split into lines); at most {MAX_LINES} in all")
    return score


def split_lines(notes: tuple[ScoreNote, ...] | list[ScoreNote], limit: int | None = None
                ) -> list[list[ScoreNote]]:
    """Chords split greedily into monophonic lines: each note, in order of onset and from
    the top down, joins the first line that is free by then (else opens a new one).

    With `limit`, stops as soon as there are more lines than that (a hostile file with
    thousands of simultaneous notes would otherwise cost notes x lines).
    """
    lines: list[list[ScoreNote]] = []
    for note in sorted(notes, key=lambda n: (n.start_s, -n.pitch)):
        if limit is not None and len(lines) > limit:
            break
        for line in lines:
            last = line[-1]
            if last.end_s <= note.start_s + LEGATO_OVERLAP_S and last.start_s < note.start_s:
                if last.end_s > note.start_s:
                    line[-1] = replace(last, end_s=note.start_s)
                line.append(note)
                break
        else:
            lines.append([note])
    return lines


def fit_range(notes: tuple[ScoreNote, ...], low: int, high: int) -> tuple[ScoreNote, ...]:
    """The voice moved into [low, high] by whole octaves: all of it, by the fewest octaves
    that bring its median pitch inside, then any note still outside on its own."""
    median = statistics.median(n.pitch for n in notes)
    octaves = 0
    if median < low:
        octaves = math.ceil((low - median) / 12)
    elif median > high:
        octaves = -math.ceil((median - high) / 12)
    moved = []
    for note in notes:
        pitch = note.pitch + 12 * octaves
        if high - low >= 11:  # a range narrower than an octave cannot hold every class
            while pitch < low:
                pitch += 12
            while pitch > high:
                pitch -= 12
        moved.append(replace(note, pitch=pitch))
    return tuple(moved)


def frame_count(end_s: float, release_frames: int) -> int:
    """Frames to render a score ending at `end_s`: its notes and the last release."""
    return math.ceil(end_s * FRAME_RATE_HZ) + release_frames


def line_controls(line: list[ScoreNote], envelope: Envelope, n_frames: int
                  ) -> tuple[Floats, Floats]:
    """(f0 Hz, loudness dB) per frame of one monophonic line, from its notes and envelope."""
    f0 = f0_from_notes([(n.pitch, n.start_s, n.end_s) for n in line], n_frames)
    return f0, loudness_from_envelope(line, envelope, n_frames)


def loudness_from_envelope(line: list[ScoreNote], envelope: Envelope, n_frames: int) -> Floats:
    """A line's loudness curve: per note its shifted attack curve, then its release, each
    cut where the next note starts; LOUDNESS_FLOOR_DB where no note reaches."""
    loudness = np.full(n_frames, LOUDNESS_FLOOR_DB, np.float32)
    attack, release = envelope.attack_db, envelope.release_db
    starts = [_frame(n.start_s) for n in line]
    for i, note in enumerate(line):
        first = starts[i]
        # The same rounding as f0_from_notes, so pitch and loudness change together.
        last = max(first + 1, _frame(note.end_s))
        following = starts[i + 1] if i + 1 < len(line) else n_frames
        stop = min(following, n_frames)
        if first >= stop:
            continue
        shift = envelope.db_per_velocity * (note.velocity - envelope.reference_velocity)
        sounding = np.arange(first, min(last, stop))
        loudness[sounding] = attack[np.minimum(sounding - first, attack.size - 1)] + shift
        at_end = float(attack[min(last - 1 - first, attack.size - 1)]) + shift
        tail = np.arange(last, min(last + release.size, stop))
        loudness[tail] = at_end + release[tail - last]
    return np.maximum(loudness, LOUDNESS_FLOOR_DB).astype(np.float32)


def _frame(seconds: float) -> int:
    return max(0, round(seconds * FRAME_RATE_HZ))
