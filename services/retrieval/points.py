"""A track as a Qdrant point and back (ids, payload, filter conditions), for both engines."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cadenza.kit.errors import NotFound
from services.retrieval.feature_groups import FEATURE_GROUPS
from services.retrieval.model import AudioFeatures, Range, Track, TrackFilter, TrackMetadata
from services.retrieval.store import StoredTrack

AUDIO_DIMENSIONS = sum(group.dimensions for group in FEATURE_GROUPS)
TEXT_DIMENSIONS = 384
_ID_NAMESPACE = uuid.UUID("6f1c8a52-3b8e-4c1e-9d0a-2b7c5e4f9a10")

# Payload fields that filters use, and the kind of index each gets (where indexes count).
INDEXED_FIELDS = {
    "artist": "keyword",
    "album": "keyword",
    "genre": "keyword",
    "tags": "keyword",
    "key": "keyword",
    "mode": "keyword",
    "year": "integer",
    "tempo_bpm": "float",
    "duration_s": "float",
    "features.rms_db_mean": "float",
    "features.spectral_centroid_hz": "float",
    "has_audio": "bool",
}


def point_id(track_id: str) -> str:
    """Qdrant wants integers or UUIDs as ids; derive a stable UUID from the track id."""
    return str(uuid.uuid5(_ID_NAMESPACE, track_id))


def payload(track: Track) -> dict[str, Any]:
    """The point's payload: metadata, features, and top-level copies that filters use."""
    meta = track.metadata
    fields: dict[str, Any] = {
        **dataclasses.asdict(meta),
        "tags": list(meta.tags),
        "ingested_at_unix_s": track.ingested_at_unix_s,
        "has_audio": track.features is not None,
    }
    if track.features is not None:
        features = dataclasses.asdict(track.features)
        fields["features"] = features
        # Top-level copies for filters.
        for name in ("tempo_bpm", "duration_s", "key", "mode"):
            fields[name] = features[name]
    return fields


def stored_track(fields: Mapping[str, Any], audio: Sequence[float] | None,
                 text: Sequence[float] | None = None) -> StoredTrack:
    """The StoredTrack a payload (and the vectors, when fetched) describes."""
    # Payloads are JSON: field values are only known by name, hence Any.
    features: dict[str, Any] | None = fields.get("features")
    meta_fields = {f.name for f in dataclasses.fields(TrackMetadata)}
    meta: dict[str, Any] = {
        k: (tuple(v) if k == "tags" else v) for k, v in fields.items() if k in meta_fields}
    measured: dict[str, Any] | None = None if features is None else {
        k: (tuple(v) if isinstance(v, list) else v) for k, v in features.items()}
    track = Track(
        metadata=TrackMetadata(**meta),
        features=None if measured is None else AudioFeatures(**measured),
        ingested_at_unix_s=float(fields.get("ingested_at_unix_s", 0.0)),
    )
    return StoredTrack(track, *(None if v is None else np.asarray(v, dtype=np.float32)
                                for v in (audio, text)))


@dataclass(frozen=True)
class Condition:
    """One payload condition: the key matches any of `any`, lies in `range`, or equals
    `value` (exactly one of the three is set)."""

    key: str
    any: tuple[str, ...] | None = None
    range: Range | None = None
    value: str | bool | None = None


def conditions(f: TrackFilter) -> list[Condition]:
    """The conditions that must all hold for a TrackFilter; empty when unfiltered."""
    must: list[Condition] = []
    for key, values in (("artist", f.artists), ("album", f.albums), ("genre", f.genres),
                        ("tags", f.tags), ("key", f.keys)):
        if values:
            must.append(Condition(key, any=tuple(values)))
    # Loudness and brightness filter on the nested feature keys (range conditions on
    # nested keys work in every engine), so catalogs written before these filters existed
    # need no re-ingest.
    for key, bounds in (("year", f.year), ("tempo_bpm", f.tempo_bpm),
                        ("duration_s", f.duration_s), ("features.rms_db_mean", f.loudness_db),
                        ("features.spectral_centroid_hz", f.brightness_hz)):
        if bounds.min is not None or bounds.max is not None:
            must.append(Condition(key, range=bounds))
    if f.mode:
        must.append(Condition("mode", value=f.mode))
    if f.has_audio:
        must.append(Condition("has_audio", value=True))
    return must


def recommend_target(vectors: Mapping[str, np.ndarray], positive_ids: list[str],
                     negative_ids: list[str]) -> np.ndarray:
    """Qdrant's average_vector target: 2 * mean(pos) - mean(neg), or mean(pos)."""
    target = np.mean([vectors[t] for t in positive_ids], axis=0)
    if negative_ids:
        target = 2 * target - np.mean([vectors[t] for t in negative_ids], axis=0)
    return np.asarray(target)


def check_examples(vectors: Mapping[str, np.ndarray], vector_name: str,
                   track_ids: list[str]) -> None:
    """NotFound naming the first example that is missing or lacks the named vector."""
    for track_id in track_ids:
        if track_id not in vectors:
            raise NotFound(f"example track '{track_id}' is not in the catalog or has "
                           f"no {vector_name} vector")
