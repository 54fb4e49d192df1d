"""Loudness envelopes per instrument, fitted on the training renders, for scores without audio.

A score gives notes, not loudness. To render one, each note's loudness curve is the
instrument's median attack-and-sustain curve (by frames since onset), shifted by a fitted
dB-per-velocity slope, then its median release curve after the note ends.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from services.generate.audio.controls import FRAME_RATE_HZ, LOUDNESS_FLOOR_DB
from training.audio.data import Line
from training.audio.instruments import INSTRUMENTS

ATTACK_FRAMES = int(2.0 * FRAME_RATE_HZ)     # curve while a note sounds, up to 2 s
RELEASE_FRAMES = int(0.6 * FRAME_RATE_HZ)    # after it ends
REFERENCE_VELOCITY = 100
MIN_NOTES = 5


def fit_envelopes(lines: list[Line]) -> dict[str, dict[str, Any]]:
    """Per instrument name: attack_db, release_db (dB below the level at note-off), slope."""
    out: dict[str, dict[str, Any]] = {}
    for index, instrument in enumerate(INSTRUMENTS):
        mine = [x for x in lines if x.instrument == index]
        levels, velocities = [], []
        attack: list[list[float]] = [[] for _ in range(ATTACK_FRAMES)]
        release: list[list[float]] = [[] for _ in range(RELEASE_FRAMES)]
        notes = [(x, n) for x in mine for n in x.notes.tolist()]
        for line, (_, start_s, end_s, velocity) in notes:
            first, last = round(start_s * FRAME_RATE_HZ), round(end_s * FRAME_RATE_HZ)
            early = line.loudness_db[first:min(last, first + 12)]
            if early.size:
                levels.append(float(early.mean()))
                velocities.append(velocity)
        slope = float(np.polyfit(velocities, levels, 1)[0]) if len(levels) > 2 else 0.0
        for line, (_, start_s, end_s, velocity) in notes:
            first, last = round(start_s * FRAME_RATE_HZ), round(end_s * FRAME_RATE_HZ)
            shift = slope * (velocity - REFERENCE_VELOCITY)
            for t in range(min(last - first, ATTACK_FRAMES)):
                if first + t < line.loudness_db.size:
                    attack[t].append(float(line.loudness_db[first + t]) - shift)
            # Release only where nothing follows for the whole release span.
            following = line.notes[line.notes[:, 1] > start_s + 1e-6]
            gap_s = (following[:, 1].min() - end_s) if following.size else np.inf
            if gap_s * FRAME_RATE_HZ >= RELEASE_FRAMES and 0 < last < line.loudness_db.size:
                at_end = float(line.loudness_db[last - 1])
                tail = line.loudness_db[last:last + RELEASE_FRAMES]
                for t, value in enumerate(tail.tolist()):
                    release[t].append(value - at_end)
        out[instrument.name] = {
            "attack_db": _medians(attack),
            "release_db": _medians(release, empty=LOUDNESS_FLOOR_DB),
            "db_per_velocity": round(slope, 4),
            "reference_velocity": REFERENCE_VELOCITY,
        }
    return out


def _medians(samples: list[list[float]], empty: float | None = None) -> list[float]:
    """Median per frame; a frame with too few notes repeats the one before."""
    out: list[float] = []
    for values in samples:
        if len(values) >= MIN_NOTES:
            out.append(round(float(np.median(values)), 2))
        else:
            out.append(out[-1] if out else (empty if empty is not None else LOUDNESS_FLOOR_DB))
    return out
