"""The port audio analysis sits behind; librosa_analyser.LibrosaAnalyser implements it."""

from __future__ import annotations

from typing import Protocol

from services.retrieval.model import AudioFeatures


class AudioAnalyser(Protocol):
    """Reads uploaded audio files and measures their features.

    Implementations are synchronous and thread-safe; the catalog calls them from a pool.
    """

    def declared_duration_s(self, data: bytes) -> float | None:
        """The duration the file's header declares, without decoding; None if unknown."""

    def features(self, data: bytes) -> AudioFeatures:
        """Decodes a file and measures it; raises AudioError when the audio is unusable."""

    def warmup_clip(self) -> bytes:
        """A short music-like file whose analysis runs every stage (compiles, caches)."""
