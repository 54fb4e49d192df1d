"""The audio feature groups that weighted similarity S(x) = sum_i w_i f_i(x) ranges over."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FeatureGroup:
    """A named part of the audio vector, with its default weight and block size."""

    name: str
    description: str
    default_weight: float
    dimensions: int


# Default weights favour what listeners notice first (timbre, harmony, rhythm); they are
# normalised to sum 1 at query time, so only their ratios matter.
FEATURE_GROUPS: tuple[FeatureGroup, ...] = (
    FeatureGroup("timbre", "MFCC means (without c0) and spreads: instrument colour", 0.25, 78),
    FeatureGroup("harmony", "Mean chroma: which pitch classes sound", 0.20, 13),
    FeatureGroup("rhythm", "Tempo, beat strength and onset rate", 0.15, 6),
    FeatureGroup("loudness", "RMS level and dynamic range", 0.10, 4),
    FeatureGroup("brightness", "Spectral centroid, rolloff and contrast", 0.10, 18),
    FeatureGroup("pitch", "Fundamental frequency register, spread and voicing", 0.10, 6),
    FeatureGroup("key", "Correlation with the 24 major and minor key profiles", 0.10, 25),
)

GROUPS_BY_NAME = {group.name: group for group in FEATURE_GROUPS}
