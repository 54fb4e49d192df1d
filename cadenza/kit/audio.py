"""Uploaded audio bytes (WAV, FLAC, OGG, MP3) to mono float32: what every service accepts.

Retrieval analyses uploads at 22050 Hz, generate resynthesises them at 16 kHz; both read
them here, so the formats the API promises and the errors a caller sees are one set.
"""

from __future__ import annotations

import io
import logging

import librosa
import numpy as np
import numpy.typing as npt
import soundfile

logger = logging.getLogger(__name__)

Samples = npt.NDArray[np.float32]

# libsndfile names of the containers we promise to read. libsndfile reads more (AIFF, CAF,
# ...), but the API documents these four, so the rest are refused rather than half-supported.
ACCEPTED_FORMATS = frozenset({"WAV", "WAVEX", "RF64", "W64", "FLAC", "OGG", "MP3"})
# The name a caller uses for each ("wav" covers the WAV family).
FORMAT_NAMES = {"WAV": "wav", "WAVEX": "wav", "RF64": "wav", "W64": "wav", "FLAC": "flac",
                "OGG": "ogg", "MP3": "mp3"}
_NOT_AUDIO = "audio could not be decoded: not a WAV/FLAC/OGG/MP3 file"


class AudioError(ValueError):
    """Base of every audio problem the caller can fix by sending different audio."""


class AudioDecodeError(AudioError):
    """The bytes are not audio in a format we read."""


class AudioEmptyError(AudioError):
    """The file decodes but holds no samples."""


def read_audio(data: bytes, *, max_duration_s: float | None = None) -> tuple[Samples, int, str]:
    """(mono samples, their sample rate, the container's libsndfile name) of file bytes.

    Channels are averaged; non-finite samples become 0 and a float file louder than full
    scale is scaled back to a peak of 1. With `max_duration_s`, only the start of the file
    is decoded (bounds the work for long uploads). Raises AudioDecodeError for bytes that
    are not a readable WAV/FLAC/OGG/MP3 file and AudioEmptyError for one without samples.
    """
    if not data:
        raise AudioEmptyError("audio is empty")
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as audio_file:
            if audio_file.format not in ACCEPTED_FORMATS:
                raise AudioDecodeError(f"{_NOT_AUDIO} (got {audio_file.format})")
            frames = -1
            if max_duration_s is not None:
                frames = int(max_duration_s * audio_file.samplerate)
            samples = audio_file.read(frames=frames, dtype="float32", always_2d=True)
            source_rate_hz = int(audio_file.samplerate)
            container = str(audio_file.format)
    except soundfile.SoundFileError as e:
        raise AudioDecodeError(_NOT_AUDIO) from e
    except RuntimeError as e:
        # Truncated or damaged streams fail part-way through decoding, after the header.
        raise AudioDecodeError(f"audio could not be decoded: {e}") from e
    if samples.size == 0:
        raise AudioEmptyError("audio is empty")
    mono: Samples = samples.mean(axis=1)
    # Float WAV may carry NaN or inf; one would poison every frame computed from the clip.
    if not np.all(np.isfinite(mono)):
        logger.warning("audio held non-finite samples; replaced them with zeros")
        mono = np.nan_to_num(mono, nan=0.0, posinf=0.0, neginf=0.0)
    # Float files may exceed full scale; scale them back rather than clip (clipping would
    # add harmonics and change the timbre and pitch about to be measured).
    peak = float(np.max(np.abs(mono), initial=0.0))
    if peak > 1.0:
        mono /= peak
    return mono, source_rate_hz, container


def resample(samples: Samples, source_rate_hz: int, target_rate_hz: int) -> Samples:
    """Samples at `target_rate_hz` (soxr, high quality); unchanged when the rates agree."""
    if source_rate_hz != target_rate_hz:
        samples = librosa.resample(samples, orig_sr=source_rate_hz, target_sr=target_rate_hz,
                                   res_type="soxr_hq")
    return np.ascontiguousarray(samples, dtype=np.float32)


def declared_duration_s(data: bytes) -> float | None:
    """The duration the container header declares, without decoding; None if unknown."""
    try:
        info = soundfile.info(io.BytesIO(data))
    except Exception:  # undecodable headers are reported by read_audio itself
        return None
    return float(info.frames) / info.samplerate if info.samplerate and info.frames > 0 else None
