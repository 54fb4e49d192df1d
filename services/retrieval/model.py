"""The catalog's domain types: plain dataclasses, no protobuf, no Qdrant."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from services.retrieval.features import AudioFeatures


@dataclass(frozen=True)
class TrackMetadata:
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
    track: Track
    score: float
    # w_i * f_i(x) per feature group (audio modes); they sum to score.
    contributions: dict[str, float] = field(default_factory=dict)
