"""Turns uploaded audio bytes (WAV, FLAC, OGG, MP3) into checked mono float32 at 22050 Hz."""

from __future__ import annotations

import io
import logging

import librosa
import numpy as np
import soundfile

from services.retrieval.errors import (
    AudioDecodeError,
    AudioEmptyError,
    AudioSilentError,
    AudioTooShortError,
)

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 22050
MIN_DURATION_S = 2.0
# A clip whose loudest sample stays below -60 dBFS is treated as silence: at that level
# 16-bit dither and hum dominate and every feature would describe the noise floor.
SILENCE_PEAK_DBFS = -60.0

# libsndfile names of the containers we promise to read. libsndfile reads more (AIFF, CAF,
# ...), but the API documents these four, so the rest are refused rather than half-supported.
ACCEPTED_FORMATS = frozenset({"WAV", "WAVEX", "RF64", "W64", "FLAC", "OGG", "MP3"})
_NOT_AUDIO = "audio could not be decoded: not a WAV/FLAC/OGG/MP3 file"


def decode_audio(data: bytes, *, max_duration_s: float | None = None) -> np.ndarray:
    """Decodes audio file bytes to mono float32 samples at SAMPLE_RATE_HZ.

    Any sample rate and channel count is accepted; channels are averaged. With
    `max_duration_s`, only the start of the file is decoded (bounds the work for long
    uploads). Raises an AudioError subclass when the bytes are not a readable
    WAV/FLAC/OGG/MP3 file, hold no samples, are shorter than MIN_DURATION_S or silent.
    """
    if not data:
        raise AudioEmptyError("audio is empty")
    samples, source_rate_hz = _read(data, max_duration_s)
    if samples.size == 0:
        raise AudioEmptyError("audio is empty")
    duration_s = samples.size / source_rate_hz
    if duration_s < MIN_DURATION_S:
        raise AudioTooShortError(
            f"audio is {duration_s:.1f} s long; at least {MIN_DURATION_S:g} s needed"
        )
    peak = float(np.max(np.abs(samples)))
    if peak < 10.0 ** (SILENCE_PEAK_DBFS / 20.0):
        raise AudioSilentError(f"audio is silent (peak level below {SILENCE_PEAK_DBFS:g} dBFS)")
    if source_rate_hz != SAMPLE_RATE_HZ:
        samples = librosa.resample(
            samples, orig_sr=source_rate_hz, target_sr=SAMPLE_RATE_HZ, res_type="soxr_hq"
        )
    return np.ascontiguousarray(samples, dtype=np.float32)


def declared_duration_s(data: bytes) -> float | None:
    """The duration the container header declares, without decoding; None if unknown."""
    try:
        info = soundfile.info(io.BytesIO(data))
    except Exception:  # undecodable headers are reported by decode_audio itself
        return None
    return float(info.frames) / info.samplerate if info.samplerate and info.frames > 0 else None


def encode_wav(samples: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> bytes:
    """Mono float samples as WAV file bytes (libsndfile's default 16-bit PCM)."""
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sample_rate_hz, format="WAV")
    return buffer.getvalue()


def _read(data: bytes, max_duration_s: float | None) -> tuple[np.ndarray, int]:
    """Reads the samples with libsndfile (1.1+ reads MP3 through mpg123) and mixes to mono."""
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as audio_file:
            if audio_file.format not in ACCEPTED_FORMATS:
                raise AudioDecodeError(f"{_NOT_AUDIO} (got {audio_file.format})")
            frames = -1
            if max_duration_s is not None:
                frames = int(max_duration_s * audio_file.samplerate)
            samples = audio_file.read(frames=frames, dtype="float32", always_2d=True)
            source_rate_hz = int(audio_file.samplerate)
    except soundfile.SoundFileError as e:
        raise AudioDecodeError(_NOT_AUDIO) from e
    except RuntimeError as e:
        # Truncated or damaged streams fail part-way through decoding, after the header.
        raise AudioDecodeError(f"audio could not be decoded: {e}") from e
    mono = samples.mean(axis=1)
    # Float WAV may carry NaN or inf; one would poison every feature of the clip.
    if not np.all(np.isfinite(mono)):
        logger.warning("audio held non-finite samples; replaced them with zeros")
        mono = np.nan_to_num(mono, nan=0.0, posinf=0.0, neginf=0.0)
    # Float files may exceed full scale; scale them back rather than clip (clipping would
    # add harmonics and change the timbre we are about to measure).
    peak = float(np.max(np.abs(mono), initial=0.0))
    if peak > 1.0:
        mono /= peak
    return mono, source_rate_hz
