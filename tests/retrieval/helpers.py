"""Builders for retrieval tests: tracks with plausible features and random unit blocks."""

from __future__ import annotations

import numpy as np

from services.retrieval.feature_groups import FEATURE_GROUPS
from services.retrieval.model import AudioFeatures, Track, TrackMetadata

KEYS = ("C", "D", "E", "F", "G", "A", "B")


def random_features(rng: np.random.Generator) -> AudioFeatures:
    return AudioFeatures(
        duration_s=float(rng.uniform(10, 300)),
        mfcc_mean=tuple(rng.normal(size=20).tolist()),
        mfcc_std=tuple(rng.uniform(1, 5, size=20).tolist()),
        chroma_mean=tuple(rng.uniform(size=12).tolist()),
        tempo_bpm=float(rng.uniform(60, 180)), beat_strength=float(rng.uniform()),
        onset_rate_hz=float(rng.uniform(0.5, 8)), rms_db_mean=float(rng.uniform(-40, -5)),
        dynamic_range_db=float(rng.uniform(3, 40)),
        spectral_centroid_hz=float(rng.uniform(500, 4000)),
        spectral_rolloff_hz=float(rng.uniform(1000, 9000)),
        spectral_contrast_mean=tuple(rng.uniform(10, 40, size=7).tolist()),
        f0_median_hz=float(rng.uniform(80, 800)), f0_std_semitones=float(rng.uniform(0, 6)),
        voiced_fraction=float(rng.uniform()), key=str(rng.choice(KEYS)),
        mode=str(rng.choice(["major", "minor"])), key_confidence=float(rng.uniform(-1, 1)))


def random_blocks(rng: np.random.Generator) -> np.ndarray:
    parts = []
    for group in FEATURE_GROUPS:
        v = rng.normal(size=group.dimensions)
        parts.append(v / np.linalg.norm(v))
    return np.concatenate(parts).astype(np.float32)


def random_text_vector(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=384)
    return (v / np.linalg.norm(v)).astype(np.float32)


def make_track(i: int, rng: np.random.Generator, *, audio: bool = True,
               **meta: object) -> Track:
    fields: dict[str, object] = {
        "track_id": f"t{i:05d}", "title": f"Piece {i}", "artist": f"Composer {i % 7}",
        "album": f"Collection {i % 3}", "year": 1700 + i % 200, "genre": "classical",
        "tags": ("chorale",) if i % 2 else ("folk", "dance")}
    fields.update(meta)
    return Track(TrackMetadata(**fields),  # type: ignore[arg-type]
                 random_features(rng) if audio else None, 1.0e9 + i)
