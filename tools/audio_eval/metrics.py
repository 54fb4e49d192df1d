"""Audio metrics of the synthesiser eval: spectral distances, f0 and loudness errors.

Multi-resolution STFT distance as DDSP's spectral loss (Engel et al. 2020, section 4.2):
for each FFT size, mean |S - S'| + mean |log S - log S'| over bins and frames of the
linear magnitudes (Hann window, hop a quarter of the window), summed over the sizes.
"""

from __future__ import annotations

import functools

import librosa
import numpy as np
import numpy.typing as npt

from services.generate.audio.controls import HOP, SAMPLE_RATE_HZ, frame_count, loudness_db

Floats = npt.NDArray[np.float32]
Mask = npt.NDArray[np.bool_]

FFT_SIZES = (2048, 1024, 512, 256, 128, 64)
LOG_EPS = 1e-7          # DDSP-sized epsilon in log|S|
MEL_BANDS = 64
MEL_FFT = 1024
MEL_HOP = 256
MEL_EPS = 1e-5
ACTIVE_DB = -70.0       # frames quieter than this (control loudness) are not scored
# pYIN: 10-cent pitch bins (librosa's default resolution), a 128 ms window for cello's
# low notes, and the control frame grid (hop 128, frames centred on each frame's start).
PYIN_FRAME = 2048
PYIN_RESOLUTION = 0.1
PYIN_MARGIN_SEMITONES = 7


def magnitudes(audio: Floats, fft_sizes: tuple[int, ...] = FFT_SIZES) -> list[Floats]:
    """|STFT| at each FFT size (Hann, hop size/4, centred), for `spectral_distance`."""
    return [np.abs(librosa.stft(audio.astype(np.float32), n_fft=size, hop_length=size // 4,
                                window="hann", center=True)) for size in fft_sizes]


def spectral_parts(predicted: list[Floats], target: list[Floats]) -> tuple[float, float]:
    """The two halves of `spectral_distance`: (linear-magnitude L1, log-magnitude L1)."""
    linear = logarithmic = 0.0
    for a, b in zip(predicted, target, strict=True):
        frames = min(a.shape[1], b.shape[1])
        a, b = a[:, :frames], b[:, :frames]
        linear += float(np.mean(np.abs(a - b)))
        logarithmic += float(np.mean(np.abs(np.log(a + LOG_EPS) - np.log(b + LOG_EPS))))
    return linear, logarithmic


def spectral_distance(predicted: list[Floats], target: list[Floats]) -> float:
    """Sum over resolutions of mean |S - S'| + mean |log S - log S'| (DDSP's loss)."""
    return sum(spectral_parts(predicted, target))


def multiscale_spectral_distance(predicted: Floats, target: Floats) -> float:
    """`spectral_distance` of two signals (the shorter length of the two is compared)."""
    n = min(predicted.size, target.size)
    return spectral_distance(magnitudes(predicted[:n]), magnitudes(target[:n]))


@functools.lru_cache(maxsize=4)
def mel_filters(n_fft: int, n_mels: int) -> Floats:
    """librosa's Slaney mel filterbank [n_mels, 1 + n_fft/2] at SAMPLE_RATE_HZ."""
    return np.asarray(librosa.filters.mel(sr=SAMPLE_RATE_HZ, n_fft=n_fft, n_mels=n_mels),
                      np.float32)


def mel_spectrogram(audio: Floats, n_fft: int, hop: int, n_mels: int, power: float) -> Floats:
    """librosa.feature.melspectrogram's result, with the filterbank applied by np.dot.

    librosa applies it with einsum, 20x slower here than the BLAS product.
    """
    spectrum = np.abs(librosa.stft(audio.astype(np.float32), n_fft=n_fft, hop_length=hop,
                                   window="hann", center=True)) ** power
    return np.asarray(np.dot(mel_filters(n_fft, n_mels), spectrum), np.float32)


def log_mel(audio: Floats) -> Floats:
    """ln(mel magnitude + MEL_EPS): 64 bands to 8 kHz, 1024-point FFT, hop 256."""
    mel = mel_spectrogram(audio, MEL_FFT, MEL_HOP, MEL_BANDS, power=1.0)
    return np.asarray(np.log(mel + MEL_EPS), np.float32)


def log_mel_distance(predicted: Floats, target: Floats) -> float:
    """Mean |log-mel - log-mel'| over bands and frames of two `log_mel` outputs."""
    frames = min(predicted.shape[1], target.shape[1])
    return float(np.mean(np.abs(predicted[:, :frames] - target[:, :frames])))


def active_frames(control_db: Floats) -> Mask:
    """Frames whose control loudness is above ACTIVE_DB: the ones the errors are taken on."""
    return np.asarray(control_db > ACTIVE_DB)


def track_f0(audio: Floats, low_midi: float, high_midi: float) -> tuple[Floats, Mask]:
    """pYIN f0 (Hz, NaN when unvoiced) and its voiced flag, one per control frame.

    The search spans the line's notes +- PYIN_MARGIN_SEMITONES, which keeps pYIN's
    Viterbi small (its cost grows with the square of the pitch bins) but means an
    octave error cannot be reported as one: such frames come out unvoiced or off-pitch.
    """
    f0, voiced, _ = librosa.pyin(
        audio.astype(np.float32), sr=SAMPLE_RATE_HZ, frame_length=PYIN_FRAME, hop_length=HOP,
        fmin=float(librosa.midi_to_hz(low_midi - PYIN_MARGIN_SEMITONES)),
        fmax=float(librosa.midi_to_hz(high_midi + PYIN_MARGIN_SEMITONES)),
        resolution=PYIN_RESOLUTION, center=True)
    n = frame_count(audio.size)
    return f0[:n].astype(np.float32), np.asarray(voiced[:n], bool)


def cents(tracked_hz: Floats, control_hz: Floats) -> Floats:
    """|1200 log2(tracked / control)| per frame."""
    ratio = np.asarray(tracked_hz, np.float64) / np.asarray(control_hz, np.float64)
    return np.asarray(np.abs(1200.0 * np.log2(ratio)), np.float32)


def f0_cents_errors(audio: Floats, control_hz: Floats, control_db: Floats, low_midi: float,
                    high_midi: float) -> tuple[Floats, int]:
    """Cents errors on frames pYIN calls voiced and the controls call loud; and loud frames.

    The median of the returned errors (pooled over lines) is the f0 error; their count
    over the loud frames is pYIN's voiced share of what should sound.
    """
    f0, voiced = track_f0(audio, low_midi, high_midi)
    n = min(f0.size, control_hz.size)
    loud = active_frames(control_db[:n])
    scored = loud & voiced[:n] & (control_hz[:n] > 0)
    return cents(f0[:n][scored], control_hz[:n][scored]), int(loud.sum())


def loudness_errors(audio: Floats, control_db: Floats) -> Floats:
    """|loudness_db(audio) - control| in dB on the frames where the control is loud."""
    measured = loudness_db(audio)
    n = min(measured.size, control_db.size)
    loud = active_frames(control_db[:n])
    return np.asarray(np.abs(measured[:n] - control_db[:n])[loud], np.float32)
