"""The synthesiser's controls: frame grid, A-weighted loudness and f0, shared with training."""

from __future__ import annotations

from collections.abc import Iterable

import librosa
import numpy as np
import numpy.typing as npt

SAMPLE_RATE_HZ = 16000
HOP = 128                      # samples per control frame: 125 frames a second (8 ms)
FRAME_RATE_HZ = SAMPLE_RATE_HZ / HOP
LOUDNESS_FFT = 1024
LOUDNESS_FLOOR_DB = -100.0     # silence; the network sees (dB - floor) / -floor

with np.errstate(divide="ignore"):  # the 0 Hz bin has weight 0 (-inf dB)
    _A_WEIGHTS = 10.0 ** (librosa.A_weighting(
        librosa.fft_frequencies(sr=SAMPLE_RATE_HZ, n_fft=LOUDNESS_FFT), min_db=None) / 10.0)

Floats = npt.NDArray[np.float32]


def frame_count(n_samples: int) -> int:
    """Control frames for `n_samples` of audio: frame i covers samples [i*HOP, (i+1)*HOP)."""
    return n_samples // HOP


def loudness_db(audio: Floats) -> Floats:
    """A-weighted loudness per frame in dB (full scale), floored at LOUDNESS_FLOOR_DB.

    The mean A-weighted power over the bins of a Hann-windowed spectrum centred on each
    frame's first sample, as DDSP's compute_loudness does, so a curve measured on a
    recording and one the network was trained on are the same quantity. The mean over
    513 bins puts a full-scale 1 kHz sine at about -31 dB; quiet playing sits near -70.
    """
    n_frames = frame_count(len(audio))
    spectrum = np.abs(librosa.stft(audio.astype(np.float32), n_fft=LOUDNESS_FFT, hop_length=HOP,
                                   center=True, window="hann"))[:, :n_frames]
    # The window's own gain (sum of a Hann window is n_fft/2) out of the power.
    power = (spectrum / (LOUDNESS_FFT / 2)) ** 2 * _A_WEIGHTS[:, None]
    db = 10.0 * np.log10(np.maximum(power.mean(axis=0), 1e-12))
    floored: Floats = np.maximum(db, LOUDNESS_FLOOR_DB).astype(np.float32)
    return floored


def f0_from_notes(notes: Iterable[tuple[float, float, float]], n_frames: int) -> Floats:
    """f0 in Hz per frame for monophonic (midi_pitch, start_s, end_s) notes.

    Between notes the last pitch is held (and before the first, the first pitch), as DDSP's
    datasets do: loudness, not f0, says a frame is silent, and f0 never jumps to 0.
    """
    f0 = np.zeros(n_frames, np.float32)
    for pitch, start_s, end_s in sorted(notes, key=lambda n: n[1]):
        first = max(0, round(start_s * FRAME_RATE_HZ))
        last = min(n_frames, max(first + 1, round(end_s * FRAME_RATE_HZ)))
        if first >= n_frames:
            continue
        f0[first:last] = midi_to_hz(pitch)
    return hold_last(f0)


def hold_last(f0: Floats) -> Floats:
    """Zero frames filled with the previous non-zero value (leading zeros with the first)."""
    voiced = np.flatnonzero(f0 > 0)
    if voiced.size == 0:
        return f0
    index = np.maximum.accumulate(np.where(f0 > 0, np.arange(f0.size), 0))
    held = f0[index]
    held[: voiced[0]] = f0[voiced[0]]
    return held.astype(np.float32)


def midi_to_hz(pitch: float) -> float:
    """Equal-tempered frequency of a (fractional) MIDI pitch, A4 = 69 = 440 Hz."""
    return float(440.0 * 2.0 ** ((pitch - 69.0) / 12.0))
