"""Turns uploaded audio bytes (WAV, FLAC, OGG, MP3) into checked mono float32 at 22050 Hz."""

from __future__ import annotations

import io

import numpy as np
import soundfile

from cadenza.kit.audio import declared_duration_s, read_audio, resample
from services.retrieval.errors import AudioSilentError, AudioTooShortError

__all__ = ["MIN_DURATION_S", "SAMPLE_RATE_HZ", "SILENCE_PEAK_DBFS", "declared_duration_s",
           "decode_audio", "encode_wav"]

SAMPLE_RATE_HZ = 22050
MIN_DURATION_S = 2.0
# A clip whose loudest sample stays below -60 dBFS is treated as silence: at that level
# 16-bit dither and hum dominate and every feature would describe the noise floor.
SILENCE_PEAK_DBFS = -60.0


def decode_audio(data: bytes, *, max_duration_s: float | None = None) -> np.ndarray:
    """Decodes audio file bytes to mono float32 samples at SAMPLE_RATE_HZ.

    Any sample rate and channel count is accepted; channels are averaged. With
    `max_duration_s`, only the start of the file is decoded (bounds the work for long
    uploads). Raises an AudioError subclass when the bytes are not a readable
    WAV/FLAC/OGG/MP3 file, hold no samples, are shorter than MIN_DURATION_S or silent.
    The reading itself is the shared one (cadenza.kit.audio); the limits are retrieval's.
    """
    samples, source_rate_hz, _ = read_audio(data, max_duration_s=max_duration_s)
    duration_s = samples.size / source_rate_hz
    if duration_s < MIN_DURATION_S:
        raise AudioTooShortError(
            f"audio is {duration_s:.1f} s long; at least {MIN_DURATION_S:g} s needed"
        )
    peak = float(np.max(np.abs(samples)))
    if peak < 10.0 ** (SILENCE_PEAK_DBFS / 20.0):
        raise AudioSilentError(f"audio is silent (peak level below {SILENCE_PEAK_DBFS:g} dBFS)")
    return resample(samples, source_rate_hz, SAMPLE_RATE_HZ)


def encode_wav(samples: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> bytes:
    """Mono float samples as WAV file bytes (libsndfile's default 16-bit PCM)."""
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sample_rate_hz, format="WAV")
    return buffer.getvalue()
