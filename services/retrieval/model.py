"""The catalog's domain types: plain dataclasses, no protobuf, no Qdrant."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


@dataclass(frozen=True)
class AudioFeatures:
    """What the retrieval service measures on a clip; mirrors the AudioFeatures protobuf."""

    duration_s: float
    mfcc_mean: tuple[float, ...]  # 20 coefficients, over non-silent frames
    mfcc_std: tuple[float, ...]  # 20
    chroma_mean: tuple[float, ...]  # 12 pitch classes, C first; each frame scaled to max 1
    tempo_bpm: float  # 0 when no pulse is found
    beat_strength: float  # 0..1: onset-envelope autocorrelation at the beat period
    onset_rate_hz: float
    rms_db_mean: float  # dBFS over non-silent frames (a full-scale sine is -3 dBFS)
    dynamic_range_db: float  # 95th minus 10th percentile of frame level
    spectral_centroid_hz: float
    spectral_rolloff_hz: float  # frequency below which 85 % of the energy lies
    spectral_contrast_mean: tuple[float, ...]  # 7: six octave sub-bands plus the rest, dB
    f0_median_hz: float  # 0 when nothing is voiced
    f0_std_semitones: float
    voiced_fraction: float
    key: str  # tonic pitch class, e.g. "C", "F#"
    mode: str  # "major" or "minor"
    key_confidence: float  # correlation with the best key profile, -1..1 (key_profiles)


@dataclass(frozen=True)
class TrackMetadata:
    """What the caller says about a track: identity, descriptive fields and free attributes."""

    track_id: str
    title: str
    artist: str = ""
    album: str = ""
    year: int | None = None
    genre: str = ""
    tags: tuple[str, ...] = ()
    description: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    source_sha256: str = ""


@dataclass(frozen=True)
class Track:
    """A catalog entry: its metadata and, when audio was ingested, the measured features."""

    metadata: TrackMetadata
    features: AudioFeatures | None
    ingested_at_unix_s: float


@dataclass(frozen=True)
class Range:
    """Inclusive bounds; None is open."""

    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class TrackFilter:
    """All given conditions must hold; lists match any of their values."""

    artists: tuple[str, ...] = ()
    albums: tuple[str, ...] = ()
    genres: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    year: Range = Range()
    tempo_bpm: Range = Range()
    duration_s: Range = Range()
    keys: tuple[str, ...] = ()
    mode: str = ""
    has_audio: bool = False
    # Mean RMS loudness (AudioFeatures.rms_db_mean) and spectral centroid (spectral_centroid_hz).
    loudness_db: Range = Range()
    brightness_hz: Range = Range()


class ExampleSpace(enum.Enum):
    """Which vectors example search compares."""

    AUTO = "auto"  # audio when every example has audio, otherwise text
    AUDIO = "audio"  # the weighted audio feature blocks
    TEXT = "text"  # the text embeddings of the metadata


@dataclass(frozen=True)
class Hit:
    """One search result with its score."""

    track: Track
    score: float
    # w_i * f_i(x) per feature group (audio modes); they sum to score.
    contributions: dict[str, float] = field(default_factory=dict)
