"""Fixed reference centres and widths that put each scalar feature on a common scale."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from services.retrieval.model import AudioFeatures


@dataclass(frozen=True)
class Reference:
    """Where a feature's typical values lie: squash(centre) is 0.5, squash(centre +- width)
    is 0.73 / 0.27. Changing these changes every stored vector: re-index after an edit."""

    centre: float
    width: float

    def squash(self, value: float) -> float:
        """Logistic map of a value onto 0..1 (finite for any input, NaN maps to 0.5)."""
        if not math.isfinite(value):
            value = self.centre if math.isnan(value) else value
        z = (value - self.centre) / self.width
        return 0.5 * (1.0 + math.tanh(0.5 * max(min(z, 60.0), -60.0)))

    @classmethod
    def of(cls, values: Sequence[float]) -> Reference:
        """Median and half the interquartile range of sample values (how REFERENCE was made).

        Half the IQR is about 0.74 standard deviations of a normal sample, which spreads
        the squashed values nearly uniformly over 0..1, so the angle range is used evenly.
        """
        low, centre, high = np.percentile(np.asarray(values, dtype=np.float64), [25, 50, 75])
        return cls(centre=round(float(centre), 3), width=round(max(float(high - low) / 2, 1e-3), 3))


@dataclass(frozen=True)
class FeatureReference:
    """Reference scale of every scalar that feature_blocks embeds."""

    log2_tempo_bpm: Reference
    beat_strength: Reference
    log2_onset_rate_hz: Reference  # of onset_rate_hz + 0.25
    rms_db_mean: Reference
    dynamic_range_db: Reference
    log2_centroid_hz: Reference
    log2_rolloff_hz: Reference
    spectral_contrast: tuple[Reference, ...]  # 7
    log2_f0_hz: Reference
    f0_std_semitones: Reference
    voiced_fraction: Reference
    mfcc_mean: tuple[Reference, ...]  # 20; [0] is unused by the blocks
    mfcc_std: tuple[Reference, ...]  # 20


def derive_reference(features: Iterable[AudioFeatures]) -> FeatureReference:
    """Reference scales measured on a set of clips (how REFERENCE below was produced).

    Clips without a pulse (tempo 0) or without voicing (f0 0) are left out of the tempo
    and register statistics, which only describe clips that have them.
    """
    clips = list(features)

    def of(values: Iterable[float]) -> Reference:
        return Reference.of(list(values))

    return FeatureReference(
        log2_tempo_bpm=of(math.log2(f.tempo_bpm) for f in clips if f.tempo_bpm > 0),
        beat_strength=of(f.beat_strength for f in clips),
        log2_onset_rate_hz=of(math.log2(f.onset_rate_hz + 0.25) for f in clips),
        rms_db_mean=of(f.rms_db_mean for f in clips),
        dynamic_range_db=of(f.dynamic_range_db for f in clips),
        log2_centroid_hz=of(math.log2(max(f.spectral_centroid_hz, 1e-3)) for f in clips),
        log2_rolloff_hz=of(math.log2(max(f.spectral_rolloff_hz, 1e-3)) for f in clips),
        spectral_contrast=tuple(of(f.spectral_contrast_mean[i] for f in clips) for i in range(7)),
        log2_f0_hz=of(math.log2(f.f0_median_hz) for f in clips if f.f0_median_hz > 0),
        f0_std_semitones=of(f.f0_std_semitones for f in clips),
        voiced_fraction=of(f.voiced_fraction for f in clips),
        mfcc_mean=tuple(of(f.mfcc_mean[i] for f in clips) for i in range(20)),
        mfcc_std=tuple(of(f.mfcc_std[i] for f in clips) for i in range(20)),
    )


def _references(pairs: Sequence[tuple[float, float]]) -> tuple[Reference, ...]:
    return tuple(Reference(centre, width) for centre, width in pairs)


# Measured with derive_reference on the 1,295-piece demo catalog (catalog_source, rendered
# with TimGM6mb, peak-normalised to -1 dBFS), rounded. Recorded music is louder and denser
# than these MIDI renders, so its level and contrast values sit towards the ends of the
# scales, where the logistic compresses them: still ordered, less finely told apart.
# Re-derive when the catalog's character changes; every stored block must be rebuilt.
REFERENCE = FeatureReference(
    log2_tempo_bpm=Reference(6.87, 0.23),
    beat_strength=Reference(0.53, 0.18),
    log2_onset_rate_hz=Reference(0.96, 0.88),
    rms_db_mean=Reference(-14.89, 2.42),
    dynamic_range_db=Reference(4.67, 1.74),
    log2_centroid_hz=Reference(10.4, 0.38),
    log2_rolloff_hz=Reference(11.27, 0.4),
    spectral_contrast=_references(
        [
            (25.04, 3.42),
            (23.31, 3.24),
            (32.43, 3.71),
            (32.56, 3.21),
            (32.76, 3.98),
            (32.79, 4.52),
            (29.38, 6.03),
        ]
    ),
    log2_f0_hz=Reference(7.2, 1.12),
    f0_std_semitones=Reference(6.73, 2.02),
    voiced_fraction=Reference(0.67, 0.31),
    mfcc_mean=_references(
        [
            (-228.39, 63.9),
            (107.38, 46.63),
            (-48.34, 13.23),
            (17.02, 13.93),
            (-21.98, 16.53),
            (-8.8, 10.39),
            (-15.92, 8.5),
            (-9.33, 7.24),
            (-17.66, 6.61),
            (-10.06, 7.16),
            (-9.74, 6.89),
            (-3.43, 6.94),
            (-6.18, 6.22),
            (-2.68, 5.66),
            (-3.91, 6.43),
            (-0.65, 5.91),
            (-2.96, 5.38),
            (0.06, 5.17),
            (-1.47, 4.38),
            (-0.72, 3.82),
        ]
    ),
    mfcc_std=_references(
        [
            (62.44, 15.21),
            (28.32, 7.09),
            (15.14, 3.9),
            (11.57, 2.14),
            (11.22, 1.92),
            (9.88, 1.73),
            (9.84, 1.72),
            (10.35, 1.96),
            (11.35, 3.38),
            (11.87, 4.57),
            (12.81, 3.98),
            (14.06, 4.88),
            (14.22, 5.99),
            (15.77, 6.27),
            (16.33, 6.43),
            (16.29, 6.27),
            (15.98, 5.76),
            (15.09, 4.8),
            (15.55, 4.27),
            (16.47, 4.87),
        ]
    ),
)
