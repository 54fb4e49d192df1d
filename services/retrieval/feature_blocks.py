"""Unit-norm vector per feature group, so a dot product is that group's similarity.

Scalar features (tempo, centroid, MFCC coefficients, ...) are not compared by cosine of
their raw values: cosine ignores magnitude, so 60 and 180 BPM would be "identical". Each
scalar is instead put on a fixed reference scale (log for Hz and BPM), squashed to 0..1
with a logistic around the reference centre, and turned into an angle in [0, pi] and the
unit vector (cos, sin). The dot product of two such vectors is cos(angle difference): 1
for equal values, falling smoothly as values drift apart, -1 for opposite extremes. A
group of scalars concatenates their vectors scaled by sqrt(weight) (weights sum to 1), so
the group's dot product is the weighted mean of the per-scalar similarities and every
block has unit norm by construction: no zero vectors, no NaN.

Pitch-class groups (harmony, key) are vectors already: they are centred and compared by
cosine, with one extra constant dimension so a flat chroma (noise, drums) still gives a
unit vector, and two atonal clips count as alike.
"""

from __future__ import annotations

import math

import numpy as np

from services.retrieval.feature_groups import GROUPS_BY_NAME
from services.retrieval.feature_reference import REFERENCE, Reference
from services.retrieval.key_profiles import key_correlations
from services.retrieval.model import AudioFeatures

# Length of the constant dimension appended to the centred chroma (harmony) and to the 24
# key correlations (key). On the demo catalog those vectors have median lengths 0.34 and
# 2.1, so the extra dimension takes ~2 % of a tonal piece's block, yet gives a flat chroma
# (noise, drums) a defined direction: the flat dimension alone.
HARMONY_FLAT_DIMENSION = 0.05
KEY_FLAT_DIMENSION = 0.3


def feature_blocks(features: AudioFeatures) -> dict[str, np.ndarray]:
    """One L2-unit-norm float32 vector per group in FEATURE_GROUPS, keyed by group name."""
    blocks = {
        "timbre": _timbre(features),
        "harmony": _with_flat_dimension(_centred(features.chroma_mean), HARMONY_FLAT_DIMENSION),
        "rhythm": _scalars(
            [
                (_log2(features.tempo_bpm), REFERENCE.log2_tempo_bpm, 0.5),
                (features.beat_strength, REFERENCE.beat_strength, 0.25),
                (_log2(features.onset_rate_hz + 0.25), REFERENCE.log2_onset_rate_hz, 0.25),
            ]
        ),
        "loudness": _scalars(
            [
                (features.rms_db_mean, REFERENCE.rms_db_mean, 0.5),
                (features.dynamic_range_db, REFERENCE.dynamic_range_db, 0.5),
            ]
        ),
        "brightness": _brightness(features),
        "pitch": _pitch(features),
        "key": _with_flat_dimension(
            key_correlations(np.asarray(features.chroma_mean)), KEY_FLAT_DIMENSION
        ),
    }
    for name, block in blocks.items():
        # A mismatch here means feature_groups.py and this module disagree: fail loudly.
        expected = GROUPS_BY_NAME[name].dimensions
        if block.shape != (expected,):
            raise RuntimeError(f"{name} block has {block.shape} dims, expected {expected}")
    return blocks


def _timbre(features: AudioFeatures) -> np.ndarray:
    # mfcc_mean[0] is overall log energy: it belongs to loudness, and leaving it out keeps
    # timbre independent of playback level.
    means = features.mfcc_mean[1:]
    stds = features.mfcc_std
    weight = 1.0 / (len(means) + len(stds))
    items = [
        (value, reference, weight)
        for value, reference in zip(means, REFERENCE.mfcc_mean[1:], strict=True)
    ]
    items += [
        (value, reference, weight)
        for value, reference in zip(stds, REFERENCE.mfcc_std, strict=True)
    ]
    return _scalars(items)


def _brightness(features: AudioFeatures) -> np.ndarray:
    contrast_weight = 0.5 / len(features.spectral_contrast_mean)
    items = [
        (_log2(features.spectral_centroid_hz), REFERENCE.log2_centroid_hz, 0.3),
        (_log2(features.spectral_rolloff_hz), REFERENCE.log2_rolloff_hz, 0.2),
    ]
    items += [
        (value, reference, contrast_weight)
        for value, reference in zip(
            features.spectral_contrast_mean, REFERENCE.spectral_contrast, strict=True
        )
    ]
    return _scalars(items)


def _pitch(features: AudioFeatures) -> np.ndarray:
    # With nothing voiced there is no register: sit at the reference centre, so unvoiced
    # clips neither match nor repel any particular register.
    if features.voiced_fraction > 0 and features.f0_median_hz > 0:
        register = _log2(features.f0_median_hz)
    else:
        register = REFERENCE.log2_f0_hz.centre
    return _scalars(
        [
            (register, REFERENCE.log2_f0_hz, 0.5),
            (features.f0_std_semitones, REFERENCE.f0_std_semitones, 0.2),
            (features.voiced_fraction, REFERENCE.voiced_fraction, 0.3),
        ]
    )


def _scalars(items: list[tuple[float, Reference, float]]) -> np.ndarray:
    """Concatenates sqrt(weight) * (cos, sin) of each scalar's angle; weights sum to 1."""
    total_weight = sum(weight for _, _, weight in items)
    block = np.empty(2 * len(items))
    for index, (value, reference, weight) in enumerate(items):
        angle = math.pi * reference.squash(value)
        radius = math.sqrt(weight / total_weight)
        block[2 * index] = radius * math.cos(angle)
        block[2 * index + 1] = radius * math.sin(angle)
    return _unit(block)


def _centred(values: tuple[float, ...]) -> np.ndarray:
    vector = np.nan_to_num(np.asarray(values, dtype=np.float64))
    centred: np.ndarray = vector - vector.mean()
    return centred


def _with_flat_dimension(vector: np.ndarray, flat: float) -> np.ndarray:
    return _unit(np.append(np.nan_to_num(vector), flat))


def _unit(vector: np.ndarray) -> np.ndarray:
    vector = np.nan_to_num(vector)
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:  # unreachable with the constructions above; kept as a guard
        vector = np.ones_like(vector)
        norm = float(np.linalg.norm(vector))
    return (vector / norm).astype(np.float32)


def _log2(value: float) -> float:
    return math.log2(max(value, 1e-3))
