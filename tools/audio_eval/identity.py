"""Instrument identity: MFCC statistics and a logistic regression, on 3 s windows.

Features per window: 20 MFCCs (64 mel bands, 1024-point FFT, hop 256) and their deltas,
mean and standard deviation of each over the window's frames: 80 numbers, standardised.
Trained on FluidSynth renders of the TRAIN split (a few random windows a line), its C
chosen on the VALIDATION split's FluidSynth renders, then scored on the test windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from services.generate.audio.controls import FRAME_RATE_HZ, HOP
from tools.audio_eval.metrics import active_frames, mel_spectrogram

Floats = npt.NDArray[np.float32]

WINDOW_S = 3.0
WINDOW_FRAMES = int(WINDOW_S * FRAME_RATE_HZ)   # 375 control frames, 48,000 samples
MIN_ACTIVE = 0.5        # a window must be loud (above -70 dB) in half its frames
C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
N_MFCC = 20


def features(audio: Floats) -> Floats:
    """MFCC and delta-MFCC means and standard deviations of one window: [80]."""
    mel = mel_spectrogram(audio, n_fft=1024, hop=256, n_mels=64, power=2.0)
    # librosa.feature.mfcc(y=...) on the same mel power spectrogram, in dB.
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=N_MFCC)
    delta = librosa.feature.delta(mfcc)
    stacked = np.concatenate([mfcc, delta])
    return np.concatenate([stacked.mean(axis=1), stacked.std(axis=1)]).astype(np.float32)


def fixed_windows(control_db: Floats) -> list[int]:
    """First frames of the non-overlapping windows from frame 0 that are loud enough."""
    starts = range(0, control_db.size - WINDOW_FRAMES + 1, WINDOW_FRAMES)
    return [s for s in starts
            if active_frames(control_db[s:s + WINDOW_FRAMES]).mean() >= MIN_ACTIVE]


def random_windows(control_db: Floats, count: int, rng: np.random.Generator,
                   tries: int = 20) -> list[int]:
    """Up to `count` random loud-enough window starts (a subsample of a long line)."""
    room = control_db.size - WINDOW_FRAMES
    if room < 0:
        return []
    out: list[int] = []
    for _ in range(tries):
        start = int(rng.integers(0, room + 1))
        if active_frames(control_db[start:start + WINDOW_FRAMES]).mean() >= MIN_ACTIVE:
            out.append(start)
            if len(out) == count:
                break
    return out


def window_audio(audio: Floats, start_frame: int) -> Floats:
    """The samples of the window that starts at control frame `start_frame`."""
    return audio[start_frame * HOP:(start_frame + WINDOW_FRAMES) * HOP]


def classifier(c: float) -> Pipeline:
    """Standardise, then multinomial logistic regression with inverse regularisation c."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))


@dataclass
class Chosen:
    """The classifier fitted on train with the C that did best on validation."""

    model: Pipeline
    c: float
    validation_accuracy: dict[float, float]


def choose_and_fit(train_x: Floats, train_y: npt.NDArray[np.int64], valid_x: Floats,
                   valid_y: npt.NDArray[np.int64]) -> Chosen:
    """Fits one model per C on train; keeps the best on validation (ties: smaller C)."""
    scores: dict[float, float] = {}
    best: tuple[float, float, Pipeline] | None = None
    for c in C_GRID:
        model = classifier(c).fit(train_x, train_y)
        scores[c] = float(np.mean(model.predict(valid_x) == valid_y))
        if best is None or scores[c] > best[0]:
            best = (scores[c], c, model)
    assert best is not None
    return Chosen(best[2], best[1], scores)
