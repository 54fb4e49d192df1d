"""Synthetic catalog tracks for store benchmarks: the real payload schema, random vectors."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from services.retrieval.feature_groups import FEATURE_GROUPS
from services.retrieval.model import AudioFeatures, Track, TrackMetadata

KEYS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
TAGS = ("chorale", "folk", "dance", "jazz", "piano", "strings", "choir", "organ", "baroque",
        "romantic", "ambient", "march")
TEXT_DIMENSIONS = 384

Item = tuple[Track, np.ndarray, np.ndarray]


def _features(rng: np.random.Generator) -> AudioFeatures:
    u = rng.uniform(size=12)
    return AudioFeatures(
        duration_s=float(10 + 290 * u[0]),
        mfcc_mean=tuple(rng.normal(size=20).tolist()),
        mfcc_std=tuple(rng.uniform(1, 5, size=20).tolist()),
        chroma_mean=tuple(rng.uniform(size=12).tolist()),
        tempo_bpm=float(60 + 120 * u[1]), beat_strength=float(u[2]),
        onset_rate_hz=float(0.5 + 7.5 * u[3]), rms_db_mean=float(-40 + 35 * u[4]),
        dynamic_range_db=float(3 + 37 * u[5]), spectral_centroid_hz=float(500 + 3500 * u[6]),
        spectral_rolloff_hz=float(1000 + 8000 * u[7]),
        spectral_contrast_mean=tuple(rng.uniform(10, 40, size=7).tolist()),
        f0_median_hz=float(80 + 720 * u[8]), f0_std_semitones=float(6 * u[9]),
        voiced_fraction=float(u[10]), key=KEYS[int(rng.integers(12))],
        mode="major" if u[11] < 0.6 else "minor", key_confidence=float(2 * u[11] - 1))


def unit_blocks(rng: np.random.Generator, n: int) -> np.ndarray:
    """n audio vectors: one random unit block per feature group, as the store keeps them."""
    parts = []
    for group in FEATURE_GROUPS:
        v = rng.normal(size=(n, group.dimensions))
        parts.append(v / np.linalg.norm(v, axis=1, keepdims=True))
    return np.concatenate(parts, axis=1).astype(np.float32)


def unit_texts(rng: np.random.Generator, n: int) -> np.ndarray:
    """n random unit text vectors (the encoder's width)."""
    v = rng.normal(size=(n, TEXT_DIMENSIONS))
    texts: np.ndarray = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    return texts


def batches(size: int, batch: int, seed: int = 0) -> Iterator[list[Item]]:
    """`size` tracks with audio, `batch` at a time (ids t0000000...), deterministic."""
    rng = np.random.default_rng(seed)
    for start in range(0, size, batch):
        n = min(batch, size - start)
        audio, text = unit_blocks(rng, n), unit_texts(rng, n)
        items = []
        for j in range(n):
            i = start + j
            tags = tuple(TAGS[int(t)] for t in rng.choice(len(TAGS), size=1 + i % 3,
                                                           replace=False))
            meta = TrackMetadata(
                track_id=f"t{i:07d}", title=f"Piece {i}", artist=f"Composer {i % 500}",
                album=f"Collection {i % 2000}", year=1600 + i % 420, genre="classical",
                tags=tags, description=f"synthetic piece {i}")
            items.append((Track(meta, _features(rng), 1.7e9 + i), audio[j], text[j]))
        yield items
