"""Timbre transfer: a monophonic recording's pitch and loudness, to drive the synthesiser.

Pitch is pYIN's (librosa.pyin) with its voicing probability; loudness is the same
A-weighted measure the network was trained on (controls.loudness_db). In unvoiced frames
(breaths, consonants, rests) f0 is held from the last voiced frame and loudness is kept
as measured: the network, trained on held f0 through rests, decides what those frames
sound like from their loudness, so a quiet breath stays quiet rather than being cut.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import librosa
import numpy as np
import numpy.typing as npt

from cadenza.kit.audio import (
    FORMAT_NAMES,
    AudioDecodeError,
    AudioEmptyError,
    declared_duration_s,
    read_audio,
    resample,
)
from cadenza.kit.errors import InvalidArgument, ResourceExhausted
from cadenza.kit.validate import shown
from services.generate.audio.controls import (
    HOP,
    SAMPLE_RATE_HZ,
    frame_count,
    hold_last,
    loudness_db,
)

Floats = npt.NDArray[np.float32]
FIELD = "audio"
MAX_BYTES = 16 * 1024 * 1024
MAX_DURATION_S = 60.0
MAX_SHIFT_SEMITONES = 24.0
FORMATS = ("wav", "flac", "ogg", "mp3")
# pYIN on a 512-sample hop (4 synthesiser frames; frame j sits on frame 4j) with 20-cent
# pitch bins: 0.9 s for 30 s of audio on one busy core, against 24 s on the synthesiser's
# own 128-sample hop with 10-cent bins (its Viterbi pass grows with the square of the
# bins). f0 is interpolated (in log frequency) onto the 128-sample grid; a bin is at
# most 10 cents off. 1024 samples hold two periods of FMIN_HZ.
PYIN_HOP = 4 * HOP
PYIN_FRAME = 1024
PYIN_RESOLUTION = 0.2
FMIN_HZ, FMAX_HZ = 50.0, 2000.0
# pYIN marks some frames of white noise voiced, but with probability ~0.01; a sung or
# played note stays above 0.2.
MIN_VOICED_PROBABILITY = 0.1
MIN_VOICED_FRAMES = 13          # 0.1 s of pitch
SILENCE_PEAK_DBFS = -60.0
# Below 4 kHz the top of the pitch range (FMAX_HZ) is past Nyquist; above 384 kHz no
# recorder goes (and a header saying so is damaged).
MIN_RATE_HZ, MAX_RATE_HZ = 4000, 384_000


@dataclass(frozen=True)
class Pitch:
    """pYIN's reading of a recording on the synthesiser's frame grid."""

    f0_hz: Floats            # 0 in unvoiced frames
    voiced: npt.NDArray[np.bool_]

    @property
    def voiced_fraction(self) -> float:
        """Share of frames found pitched."""
        return float(self.voiced.mean()) if self.voiced.size else 0.0

    @property
    def median_f0_hz(self) -> float:
        """Median f0 of the pitched frames."""
        return float(np.median(self.f0_hz[self.voiced]))


def check_format(value: str) -> str | None:
    """The caller's container name, lower case; None when empty (detected from the bytes)."""
    if not value:
        return None
    name = value.strip().lower()
    if name not in FORMATS:
        raise InvalidArgument("audio_format", f"{shown(value)} is not served; use one of "
                                              f"{', '.join(FORMATS)} or leave it empty")
    return name


def check_shift(value: float | None) -> float | None:
    """A pitch shift in semitones within +/-24 (None: chosen from the recording)."""
    if value is not None and not (math.isfinite(value) and abs(value) <= MAX_SHIFT_SEMITONES):
        raise InvalidArgument("shift_semitones", f"must be between -24 and 24, got {value}")
    return value


def decode_recording(data: bytes, container: str | None) -> Floats:
    """Mono samples at 16 kHz; ResourceExhausted over MAX_BYTES or MAX_DURATION_S,
    InvalidArgument for bytes that are empty, damaged or of another format."""
    if len(data) > MAX_BYTES:
        raise ResourceExhausted(f"{FIELD}: is {len(data) / 2**20:.1f} MiB; the limit is 16 MiB")
    declared = declared_duration_s(data) if data else None
    if declared is not None and declared > MAX_DURATION_S:
        raise ResourceExhausted(f"{FIELD}: the recording is {declared:.1f} s long; the limit "
                                f"is {MAX_DURATION_S:g} s")
    try:
        # A little past the limit, so a file whose header does not say is caught too.
        samples, rate_hz, found = read_audio(data, max_duration_s=MAX_DURATION_S + 1.0)
    except AudioEmptyError as e:
        raise InvalidArgument(FIELD, "is empty; send a WAV, FLAC, OGG or MP3 recording") from e
    except AudioDecodeError as e:
        raise InvalidArgument(FIELD, str(e)) from e
    if not MIN_RATE_HZ <= rate_hz <= MAX_RATE_HZ:
        raise InvalidArgument(FIELD, f"has a sample rate of {rate_hz} Hz; send "
                                     f"{MIN_RATE_HZ}-{MAX_RATE_HZ} Hz")
    if samples.size > MAX_DURATION_S * rate_hz:
        raise ResourceExhausted(f"{FIELD}: the recording is longer than the limit of "
                                f"{MAX_DURATION_S:g} s")
    if container is not None and FORMAT_NAMES[found] != container:
        raise InvalidArgument("audio_format", f"says {container}, but the audio is "
                                              f"{FORMAT_NAMES[found]}")
    return resample(samples, rate_hz, SAMPLE_RATE_HZ)


def track_pitch(samples: Floats) -> Pitch:
    """f0 and voicing per synthesiser frame; InvalidArgument when nothing is pitched."""
    n_frames = frame_count(samples.size)
    if float(np.max(np.abs(samples), initial=0.0)) < 10.0 ** (SILENCE_PEAK_DBFS / 20.0):
        raise InvalidArgument(FIELD, "no pitch was found: the recording is silent")
    if n_frames == 0 or samples.size < PYIN_FRAME:
        raise InvalidArgument(FIELD, "no pitch was found: the recording is too short")
    f0, flag, probability = librosa.pyin(
        samples, fmin=FMIN_HZ, fmax=FMAX_HZ, sr=SAMPLE_RATE_HZ, frame_length=PYIN_FRAME,
        hop_length=PYIN_HOP, resolution=PYIN_RESOLUTION, center=True)
    voiced = flag & (probability >= MIN_VOICED_PROBABILITY) & np.isfinite(f0)
    position = np.arange(n_frames) / (PYIN_HOP // HOP)
    nearest = np.minimum(np.round(position).astype(int), f0.size - 1)
    on_grid = voiced[nearest]
    if int(on_grid.sum()) < MIN_VOICED_FRAMES:
        raise InvalidArgument(FIELD, "no pitch was found: send a monophonic recording of "
                                     "one voice or instrument (noise has no pitch)")
    known = np.flatnonzero(voiced)
    log_f0 = np.interp(position, known, np.log2(f0[known]))
    return Pitch(np.where(on_grid, 2.0 ** log_f0, 0.0).astype(np.float32), on_grid)


def octave_shift(median_f0_hz: float, low: int, high: int) -> float:
    """Whole octaves (within +/-24 semitones) moving a median pitch nearest the middle of
    [low, high]; 0 when it is inside already."""
    pitch = 69.0 + 12.0 * math.log2(median_f0_hz / 440.0)
    if low <= pitch <= high:
        return 0.0
    octaves = round(((low + high) / 2.0 - pitch) / 12.0)
    return float(12 * max(-2, min(2, octaves)))


def transfer_controls(samples: Floats, pitch: Pitch, shift_semitones: float
                      ) -> tuple[Floats, Floats]:
    """(f0 Hz, loudness dB) per frame: the shifted pitch held through unvoiced frames, and
    the recording's loudness as measured."""
    shifted = (pitch.f0_hz * np.float32(2.0 ** (shift_semitones / 12.0))).astype(np.float32)
    return hold_last(shifted), loudness_db(samples)
