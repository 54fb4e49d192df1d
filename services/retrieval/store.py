"""The port the catalog is kept behind; the Qdrant adapter implements it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from services.retrieval.model import Track, TrackFilter

AUDIO_VECTOR = "audio"
TEXT_VECTOR = "text"


@dataclass(frozen=True)
class StoredTrack:
    """A track as stored, with its vectors when asked for."""

    track: Track
    # The concatenated unit blocks of every feature group (None for metadata-only tracks).
    audio_vector: np.ndarray | None
    # The metadata text embedding; only `get(..., with_vectors=True)` fills it.
    text_vector: np.ndarray | None = None


@dataclass(frozen=True)
class ScoredTrack:
    """A stored track and its similarity to a query."""

    stored: StoredTrack
    score: float


class VectorStore(Protocol):
    """Tracks with an audio vector (dot product) and a text vector (cosine) each.

    Implementations are synchronous; the service calls them from one worker thread.
    """

    kind: str

    def upsert(self, track: Track, audio_vector: np.ndarray | None,
               text_vector: np.ndarray) -> bool:
        """Writes the track whole (one atomic point write); True when it replaced one."""

    def get(self, track_ids: list[str], with_vectors: bool = False) -> list[StoredTrack]:
        """The tracks that exist, in the order asked; with both vectors when asked."""

    def delete(self, track_id: str) -> bool:
        """True when the track existed."""

    def scroll(self, filter: TrackFilter, limit: int,
               after: str | None) -> tuple[list[Track], str | None]:
        """A page in storage order, and the cursor for the next page (None at the end)."""

    def query(self, vector_name: str, vector: np.ndarray, filter: TrackFilter,
              limit: int, offset: int, exclude_ids: list[str]) -> list[ScoredTrack]:
        """Nearest tracks by the named vector's similarity (dot or cosine)."""

    def recommend(self, vector_name: str, positive_ids: list[str], negative_ids: list[str],
                  filter: TrackFilter, limit: int, offset: int,
                  exclude_ids: list[str]) -> list[ScoredTrack]:
        """Nearest tracks by the named vector to Qdrant's average_vector target,
        2 * mean(positives) - mean(negatives) (mean(positives) without negatives), over
        the examples' stored vectors. The examples themselves are left out. Every example
        must exist and have the named vector (NotFound otherwise)."""

    def count(self, filter: TrackFilter) -> int:
        """How many tracks match the filter, exactly."""

    def close(self) -> None:
        """Releases the store; no call may follow."""
