"""Spotify-style target_ values: how close a track's audio features are to what was asked.

Each given target scores 1 at the target and falls off with distance on a scale that
matches how listeners hear the difference (about 15 BPM, 6 dB, a fifth of an octave in
brightness, a minute of duration); key counts steps round the circle of fifths. The
closeness of a track is the mean over the targets given; a track without audio scores 0.
"""

from __future__ import annotations

import math

SCALES = {"tempo_bpm": 15.0, "loudness_db": 6.0, "duration_s": 60.0}
LABELS = {"tempo_bpm": "tempo", "key": "key", "mode": "mode", "loudness_db": "loudness",
          "brightness_hz": "brightness", "duration_s": "duration"}


def closeness(features: dict[str, float], targets: dict[str, float]) -> float:
    """How close the track's features are to the targets, in [0, 1]; 0 without either."""
    if not targets or not features:
        return 0.0
    return sum(_one(name, features[name], target) for name, target in targets.items()
               if name in features) / len(targets)


def _one(name: str, value: float, target: float) -> float:
    if name == "mode":
        return 1.0 if round(value) == round(target) else 0.0
    if name == "key":
        if value < 0:
            return 0.0
        steps = (int(value) - int(target)) * 7 % 12  # semitones -> steps of a fifth
        return 1.0 - min(steps, 12 - steps) / 6.0
    if name == "brightness_hz":
        if value <= 0 or target <= 0:
            return 0.0
        return math.exp(-abs(math.log2(value / target)) / 0.2)
    return math.exp(-abs(value - target) / SCALES[name])


def describe(targets: dict[str, float]) -> str:
    """The reason shown for a track chosen by closeness to the targets."""
    return "close to your target " + ", ".join(LABELS[name] for name in targets)
