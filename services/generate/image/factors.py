"""What the music says about its cover: audio features mapped to plain factor values.

Each factor is a number in [0, 1] (hues are in degrees) that is monotonic in the audio
feature driving it, so an eval can check the picture follows the music:

- hue_deg: the key's place on the circle of fifths, linearly 0..330 degrees (C 0, G 30,
  D 60, ..., F 330), so related keys get neighbouring hues.
- accent_hue_deg: the same mapping for the chroma's second strongest pitch class.
- lightness: the palette's mid tone (HLS lightness); major 0.64, minor 0.36.
- brightness: log spectral centroid, 0 at 300 Hz, 1 at 6,000 Hz.
- roughness: the mean |MFCC| of coefficients 2..12 (how ridged the spectral envelope is,
  the timbre's "edge"), 0 at 4, 1 at 28.
- density: log(tempo_bpm * onset_rate_hz), the rhythm's activity, 0 at 20, 1 at 2,000.
- contrast: 0.65 x loudness (-45..-5 dBFS) + 0.35 x dynamic range (2..45 dB), each
  mapped linearly onto 0..1. Loudness leads because the two pull against each other in
  real masters (loud ones are compressed): an even mix would leave most covers mid-grey.

Values outside the ranges are clipped. A missing feature (an empty string or tuple, or a
zero or negative number where only positive values make sense) falls back to the neutral
middle of its range: hue 165 degrees (unless the chroma names a tonic), lightness 0.5,
brightness, roughness, density and contrast 0.5 each (tempo 100 bpm and 2 onsets per
second stand in for a missing tempo or onset rate).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

NEUTRAL = 0.5
NEUTRAL_HUE_DEG = 165.0
MAJOR_LIGHTNESS = 0.64
MINOR_LIGHTNESS = 0.36
CENTROID_RANGE_HZ = (300.0, 6000.0)
ROUGHNESS_RANGE = (4.0, 28.0)
ACTIVITY_RANGE = (20.0, 2000.0)  # tempo_bpm * onset_rate_hz
LOUDNESS_RANGE_DB = (-45.0, -5.0)
DYNAMIC_RANGE_DB = (2.0, 45.0)
LOUDNESS_SHARE = 0.65
# A missing tempo or onset rate: 100 bpm x 2 Hz = 200, the middle of ACTIVITY_RANGE.
DEFAULT_TEMPO_BPM = 100.0
DEFAULT_ONSET_RATE_HZ = 2.0

_NATURALS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_ACCIDENTALS = {"": 0, "#": 1, "♯": 1, "b": -1, "♭": -1}


@dataclass(frozen=True)
class MusicFeatures:
    """What drives a cover: a catalog track's audio features (or a generated piece's)."""

    key: str  # tonic "C", "C#", "Db", ..., "B"; "" when unknown
    mode: str  # "major" | "minor" | ""
    chroma: tuple[float, ...]  # 12 mean chroma energies, C first (may be empty)
    spectral_centroid_hz: float  # brightness
    mfcc_mean: tuple[float, ...]  # 20 MFCC means (timbre; may be empty)
    tempo_bpm: float
    onset_rate_hz: float
    rms_db_mean: float  # loudness, dBFS (about -60..0)
    dynamic_range_db: float  # about 0..60


def pitch_class(name: str) -> int | None:
    """0..11 for a note name ("C", "F#", "Bb", "c#"), None when empty or not a note."""
    name = name.strip()
    if not name or name[0].upper() not in _NATURALS or name[1:] not in _ACCIDENTALS:
        return None
    return (_NATURALS[name[0].upper()] + _ACCIDENTALS[name[1:]]) % 12


def fifths_index(pc: int) -> int:
    """Position of a pitch class on the circle of fifths: C 0, G 1, D 2, ..., F 11."""
    return (pc * 7) % 12


def fifths_hue_deg(pc: int) -> float:
    """The hue of a pitch class: 30 degrees per step round the circle of fifths."""
    return 30.0 * fifths_index(pc)


def factor_values(features: MusicFeatures) -> dict[str, float]:
    """Every factor's value for these features (see the module docstring for the maps)."""
    tonic = _tonic(features)
    return {
        "hue_deg": NEUTRAL_HUE_DEG if tonic is None else fifths_hue_deg(tonic),
        "accent_hue_deg": _accent_hue_deg(features.chroma, tonic),
        "lightness": _lightness(features.mode),
        "brightness": _log_unit(features.spectral_centroid_hz, CENTROID_RANGE_HZ),
        "roughness": _roughness(features.mfcc_mean),
        "density": _density(features.tempo_bpm, features.onset_rate_hz),
        "contrast": _contrast(features.rms_db_mean, features.dynamic_range_db),
    }


def _tonic(features: MusicFeatures) -> int | None:
    # An unknown key borrows the chroma's strongest pitch class, the best guess at a tonic.
    tonic = pitch_class(features.key)
    if tonic is None and _usable_chroma(features.chroma):
        tonic = _ranked(features.chroma)[0]
    return tonic


def _accent_hue_deg(chroma: Sequence[float], tonic: int | None) -> float:
    """The second strongest pitch class's hue; the strongest one if the second is the tonic.

    Without a usable chroma the accent is the dominant's hue (a fifth above the tonic,
    30 degrees on), the commonest second strongest class of tonal music.
    """
    base = NEUTRAL_HUE_DEG if tonic is None else fifths_hue_deg(tonic)
    if not _usable_chroma(chroma):
        return (base + 30.0) % 360.0
    first, second = _ranked(chroma)[:2]
    return fifths_hue_deg(first if second == tonic else second)


def _usable_chroma(chroma: Sequence[float]) -> bool:
    values = [float(c) for c in chroma]
    return len(values) == 12 and all(math.isfinite(v) for v in values) and max(values) > min(
        values)


def _ranked(chroma: Sequence[float]) -> list[int]:
    # Ties go to the lower pitch class, so the ranking is deterministic.
    return sorted(range(12), key=lambda pc: (-float(chroma[pc]), pc))


def _lightness(mode: str) -> float:
    mode = mode.strip().lower()
    if mode == "major":
        return MAJOR_LIGHTNESS
    if mode == "minor":
        return MINOR_LIGHTNESS
    return NEUTRAL


def _roughness(mfcc_mean: Sequence[float]) -> float:
    ridges = [abs(float(c)) for c in mfcc_mean[2:13]]
    if len(ridges) < 11 or not all(math.isfinite(r) for r in ridges):
        return NEUTRAL
    return _linear_unit(sum(ridges) / len(ridges), ROUGHNESS_RANGE)


def _density(tempo_bpm: float, onset_rate_hz: float) -> float:
    tempo = tempo_bpm if _positive(tempo_bpm) else DEFAULT_TEMPO_BPM
    onsets = onset_rate_hz if _positive(onset_rate_hz) else DEFAULT_ONSET_RATE_HZ
    return _log_unit(tempo * onsets, ACTIVITY_RANGE)


def _contrast(rms_db_mean: float, dynamic_range_db: float) -> float:
    # 0 dBFS is a legitimate level, but exactly 0.0 is what an unmeasured field reads.
    loud = (_linear_unit(rms_db_mean, LOUDNESS_RANGE_DB)
            if math.isfinite(rms_db_mean) and rms_db_mean != 0.0 else NEUTRAL)
    spread = (_linear_unit(dynamic_range_db, DYNAMIC_RANGE_DB)
              if _positive(dynamic_range_db) else NEUTRAL)
    return LOUDNESS_SHARE * loud + (1.0 - LOUDNESS_SHARE) * spread


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0.0


def _linear_unit(value: float, bounds: tuple[float, float]) -> float:
    low, high = bounds
    return min(max((value - low) / (high - low), 0.0), 1.0)


def _log_unit(value: float, bounds: tuple[float, float]) -> float:
    if not _positive(value):
        return NEUTRAL
    return _linear_unit(math.log(value), (math.log(bounds[0]), math.log(bounds[1])))
