"""AudioAnalyser on libsndfile and librosa: audio_decoding reads files, features measures them."""

from __future__ import annotations

from services.retrieval.audio_decoding import declared_duration_s, encode_wav
from services.retrieval.feature_speed import benchmark_clip
from services.retrieval.features import features_from_bytes
from services.retrieval.model import AudioFeatures

# Long enough for every feature group to find something (beats, pitch, key), short enough
# that warm-up is dominated by compiling librosa's kernels, not by the analysis itself.
WARMUP_CLIP_S = 3.0


class LibrosaAnalyser:
    """Decodes WAV/FLAC/OGG/MP3 with libsndfile and extracts features with librosa."""

    def declared_duration_s(self, data: bytes) -> float | None:
        """The duration the container header declares, without decoding; None if unknown."""
        return declared_duration_s(data)

    def features(self, data: bytes) -> AudioFeatures:
        """Decodes the whole file and extracts its features; raises AudioError on bad audio."""
        return features_from_bytes(data)

    def warmup_clip(self) -> bytes:
        """A short music-like WAV, so warm-up runs decoding and every feature group."""
        return encode_wav(benchmark_clip(WARMUP_CLIP_S))
