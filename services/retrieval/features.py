"""Audio feature extraction with librosa: one AudioFeatures record per clip."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, fields
from typing import TypedDict

import librosa
import numpy as np

from services.retrieval.audio_decoding import SAMPLE_RATE_HZ, decode_audio
from services.retrieval.key_profiles import estimate_key
from services.retrieval.model import AudioFeatures
from services.retrieval.pitch_tracking import track_pitch

__all__ = ["Spectra", "extract_features", "features_from_bytes"]

logger = logging.getLogger(__name__)

N_FFT = 2048
HOP_LENGTH = 512  # 23 ms at 22050 Hz
N_MFCC = 20
# Frames more than this far below the loudest frame are treated as silence (lead-in, fades,
# gaps between tracks): averaging them in would describe the noise floor, not the music.
ACTIVE_FRAME_GATE_DB = 50.0
# An onset must rise this far (mean dB increase over mel bands) above the envelope's median;
# steady noise peaks near 2, a played note at 5-50.
MIN_ONSET_RISE_DB = 2.0
# Floor for dB conversions, so digital silence gives -120 dBFS instead of -inf.
_DB_FLOOR = 1e-6


@dataclass(frozen=True)
class Spectra:
    """Analysis shared by the feature groups, computed once per clip."""

    samples: np.ndarray  # mono float32 at SAMPLE_RATE_HZ
    magnitude: np.ndarray  # |STFT|, (1 + N_FFT / 2, frames)
    power: np.ndarray  # magnitude squared
    log_mel: np.ndarray  # mel power spectrogram in dB, floor 80 dB below peak, (128, frames)
    frame_db: np.ndarray  # RMS level per frame, dBFS
    active: np.ndarray  # bool per frame: within ACTIVE_FRAME_GATE_DB of the loudest

    @property
    def duration_s(self) -> float:
        """Length of the clip in seconds."""
        return self.samples.size / SAMPLE_RATE_HZ


# What each group contributes to AudioFeatures: typed, so that unpacking the groups into
# AudioFeatures(...) is checked field by field.


class TimbreFeatures(TypedDict):
    """MFCC statistics."""

    mfcc_mean: tuple[float, ...]
    mfcc_std: tuple[float, ...]


class HarmonyFeatures(TypedDict):
    """Mean chroma."""

    chroma_mean: tuple[float, ...]


class RhythmFeatures(TypedDict):
    """Tempo, pulse clarity and onset rate."""

    tempo_bpm: float
    beat_strength: float
    onset_rate_hz: float


class LoudnessFeatures(TypedDict):
    """Level and dynamic range."""

    rms_db_mean: float
    dynamic_range_db: float


class BrightnessFeatures(TypedDict):
    """Spectral centroid, rolloff and contrast."""

    spectral_centroid_hz: float
    spectral_rolloff_hz: float
    spectral_contrast_mean: tuple[float, ...]


class PitchFeatures(TypedDict):
    """Fundamental-frequency register, spread and voicing."""

    f0_median_hz: float
    f0_std_semitones: float
    voiced_fraction: float


class KeyFeatures(TypedDict):
    """Estimated key, mode and confidence."""

    key: str
    mode: str
    key_confidence: float


def features_from_bytes(data: bytes, *, max_duration_s: float | None = None) -> AudioFeatures:
    """Decodes an uploaded file and extracts its features; raises AudioError on bad audio."""
    return extract_features(decode_audio(data, max_duration_s=max_duration_s))


def extract_features(samples: np.ndarray) -> AudioFeatures:
    """Extracts AudioFeatures from mono float32 samples at SAMPLE_RATE_HZ (see decode_audio)."""
    spectra = compute_spectra(samples)
    harmony = harmony_features(spectra)
    features = AudioFeatures(
        duration_s=spectra.duration_s,
        **timbre_features(spectra),
        **harmony,
        **rhythm_features(spectra),
        **loudness_features(spectra),
        **brightness_features(spectra),
        **pitch_features(spectra),
        **key_features(harmony["chroma_mean"]),
    )
    return _finite(features)


def compute_spectra(samples: np.ndarray) -> Spectra:
    """One STFT, mel spectrogram and frame level shared by every feature group."""
    samples = np.asarray(samples, dtype=np.float32)
    magnitude = np.abs(librosa.stft(samples, n_fft=N_FFT, hop_length=HOP_LENGTH))
    power = magnitude**2
    mel = librosa.feature.melspectrogram(S=power, sr=SAMPLE_RATE_HZ)
    # librosa's defaults (80 dB below the loudest bin is the floor) keep MFCCs and onsets
    # independent of how deep the digital silence between notes goes.
    log_mel = librosa.power_to_db(mel, ref=1.0, top_db=80.0)
    # Level from the waveform, not the spectrum, so the dBFS figures are exact.
    rms = librosa.feature.rms(y=samples, frame_length=N_FFT, hop_length=HOP_LENGTH)[0]
    frame_db = 20.0 * np.log10(np.maximum(rms, _DB_FLOOR))
    frame_count = min(magnitude.shape[1], frame_db.size)
    frame_db = frame_db[:frame_count]
    active = frame_db >= frame_db.max() - ACTIVE_FRAME_GATE_DB
    return Spectra(
        samples=samples,
        magnitude=magnitude[:, :frame_count],
        power=power[:, :frame_count],
        log_mel=log_mel[:, :frame_count],
        frame_db=frame_db,
        active=active,
    )


def timbre_features(spectra: Spectra) -> TimbreFeatures:
    """MFCC means and standard deviations over the non-silent frames."""
    mfcc = librosa.feature.mfcc(S=spectra.log_mel, n_mfcc=N_MFCC)[:, spectra.active]
    return {"mfcc_mean": _floats(mfcc.mean(axis=1)), "mfcc_std": _floats(mfcc.std(axis=1))}


def harmony_features(spectra: Spectra) -> HarmonyFeatures:
    """Mean chroma (C first) over the non-silent frames, corrected for the clip's tuning."""
    # Tuning from every fourth frame: a quarter of the cost, and the estimate is a median
    # over thousands of spectral peaks anyway.
    tuning = librosa.estimate_tuning(S=spectra.magnitude[:, ::4], sr=SAMPLE_RATE_HZ)
    chroma = librosa.feature.chroma_stft(
        S=spectra.power, sr=SAMPLE_RATE_HZ, tuning=float(np.nan_to_num(tuning))
    )
    return {"chroma_mean": _floats(chroma[:, spectra.active].mean(axis=1))}


def rhythm_features(spectra: Spectra) -> RhythmFeatures:
    """Tempo, pulse clarity and onset rate from the onset-strength envelope.

    All three are 0 when nothing rises clearly above the envelope's typical level (a drone,
    steady noise): librosa would otherwise find "beats" in the numerical jitter.
    """
    envelope = librosa.onset.onset_strength(S=spectra.log_mel, sr=SAMPLE_RATE_HZ)
    onsets = librosa.onset.onset_detect(
        onset_envelope=envelope, sr=SAMPLE_RATE_HZ, hop_length=HOP_LENGTH
    )
    onsets = onsets[envelope[onsets] >= np.median(envelope) + MIN_ONSET_RISE_DB]
    if onsets.size < 2:
        return {"tempo_bpm": 0.0, "beat_strength": 0.0, "onset_rate_hz": 0.0}
    tempo, beats = librosa.beat.beat_track(
        onset_envelope=envelope, sr=SAMPLE_RATE_HZ, hop_length=HOP_LENGTH
    )
    tempo_bpm = _refined_tempo(float(np.atleast_1d(tempo)[0]), beats)
    return {
        "tempo_bpm": tempo_bpm,
        "beat_strength": _pulse_clarity(envelope, tempo_bpm),
        "onset_rate_hz": onsets.size / spectra.duration_s,
    }


def _refined_tempo(tempo_bpm: float, beat_frames: np.ndarray) -> float:
    """Tempo from a straight-line fit of beat times, finer than librosa's lag grid.

    beat_track's tempo is 60 / (whole number of 23 ms frames): 117.5 or 123.0 BPM, never
    120. The beats themselves alternate between neighbouring frames, so the slope of beat
    time against beat index recovers the period to a fraction of a frame.
    """
    if beat_frames.size < 4 or tempo_bpm <= 0:
        return tempo_bpm
    beat_times_s = beat_frames * (HOP_LENGTH / SAMPLE_RATE_HZ)
    period_s = float(np.polyfit(np.arange(beat_frames.size), beat_times_s, 1)[0])
    refined_bpm = 60.0 / period_s if period_s > 0 else tempo_bpm
    # Keep the fit only when it agrees with librosa's estimate (no skipped or doubled beats).
    return refined_bpm if abs(refined_bpm / tempo_bpm - 1.0) < 0.08 else tempo_bpm


def _pulse_clarity(envelope: np.ndarray, tempo_bpm: float) -> float:
    """Normalised autocorrelation of the onset envelope at one beat period, clipped to 0..1.

    Near 1 when onsets recur exactly every beat (a click track), near 0 when they do not
    (noise, rubato); unlike a mean onset strength it does not depend on loudness.
    """
    if tempo_bpm <= 0:
        return 0.0
    lag_frames = 60.0 * SAMPLE_RATE_HZ / (HOP_LENGTH * tempo_bpm)
    centred = envelope - envelope.mean()
    last_lag = math.ceil(lag_frames) + 1
    if last_lag >= centred.size:
        return 0.0
    autocorrelation = librosa.autocorrelate(centred, max_size=last_lag + 1)
    if autocorrelation[0] <= 0:
        return 0.0
    first_lag = max(1, math.floor(lag_frames) - 1)
    peak = autocorrelation[first_lag : last_lag + 1].max() / autocorrelation[0]
    return float(np.clip(peak, 0.0, 1.0))


def loudness_features(spectra: Spectra) -> LoudnessFeatures:
    """Mean level and dynamic range of the non-silent frames, in dB."""
    levels = spectra.frame_db[spectra.active]
    high, low = np.percentile(levels, [95, 10])
    return {"rms_db_mean": float(levels.mean()), "dynamic_range_db": float(high - low)}


def brightness_features(spectra: Spectra) -> BrightnessFeatures:
    """Spectral centroid, 85 % rolloff and octave-band contrast over the non-silent frames."""
    magnitude = spectra.magnitude[:, spectra.active]
    centroid = librosa.feature.spectral_centroid(S=magnitude, sr=SAMPLE_RATE_HZ)
    rolloff = librosa.feature.spectral_rolloff(S=magnitude, sr=SAMPLE_RATE_HZ, roll_percent=0.85)
    contrast = librosa.feature.spectral_contrast(S=magnitude, sr=SAMPLE_RATE_HZ)
    return {
        "spectral_centroid_hz": float(centroid.mean()),
        "spectral_rolloff_hz": float(rolloff.mean()),
        "spectral_contrast_mean": _floats(contrast.mean(axis=1)),
    }


def pitch_features(spectra: Spectra) -> PitchFeatures:
    """Median f0, its spread in semitones and the voiced fraction (YIN, see pitch_tracking)."""
    f0_hz, voiced = track_pitch(spectra.samples, SAMPLE_RATE_HZ)
    voiced_f0 = f0_hz[voiced]
    if voiced_f0.size == 0:
        return {"f0_median_hz": 0.0, "f0_std_semitones": 0.0, "voiced_fraction": 0.0}
    median_hz = float(np.median(voiced_f0))
    semitones = 12.0 * np.log2(voiced_f0 / median_hz)
    return {
        "f0_median_hz": median_hz,
        "f0_std_semitones": float(semitones.std()),
        "voiced_fraction": float(voiced.mean()),
    }


def key_features(chroma_mean: tuple[float, ...]) -> KeyFeatures:
    """Key, mode and confidence from the mean chroma (Krumhansl-Kessler profiles)."""
    tonic, mode, confidence = estimate_key(np.asarray(chroma_mean))
    return {"key": tonic, "mode": mode, "key_confidence": confidence}


def _floats(values: np.ndarray) -> tuple[float, ...]:
    return tuple(float(value) for value in values)


def _finite(features: AudioFeatures) -> AudioFeatures:
    """Replaces any NaN or infinity by 0 (logged): one bad value must not poison a search."""
    changes: dict[str, object] = {}
    for field in fields(features):
        value = getattr(features, field.name)
        if isinstance(value, float) and not math.isfinite(value):
            changes[field.name] = 0.0
        elif isinstance(value, tuple) and not all(math.isfinite(v) for v in value):
            changes[field.name] = tuple(v if math.isfinite(v) else 0.0 for v in value)
    if not changes:
        return features
    logger.warning("non-finite feature values replaced by 0: %s", sorted(changes))
    return AudioFeatures(**{**features.__dict__, **changes})
