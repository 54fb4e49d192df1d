"""The control curves: A-weighted loudness and f0 from notes on the synthesiser's frame grid."""

from __future__ import annotations

import numpy as np
import pytest

from services.generate.audio.controls import (
    FRAME_RATE_HZ,
    HOP,
    LOUDNESS_FLOOR_DB,
    SAMPLE_RATE_HZ,
    f0_from_notes,
    frame_count,
    loudness_db,
    midi_to_hz,
)


def _sine(hz: float, amplitude: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_loudness_falls_20_db_per_tenfold_amplitude() -> None:
    loud = [float(np.median(loudness_db(_sine(1000.0, a)))) for a in (1.0, 0.1, 0.01)]
    assert abs((loud[0] - loud[1]) - 20.0) < 0.1
    assert abs((loud[1] - loud[2]) - 20.0) < 0.1


def test_loudness_is_a_weighted() -> None:
    # A-weighting takes ~19 dB off 100 Hz relative to 1 kHz.
    drop = float(np.median(loudness_db(_sine(1000.0, 0.5))) -
                 np.median(loudness_db(_sine(100.0, 0.5))))
    assert 17.0 < drop < 21.0


def test_silence_sits_at_the_floor_and_frames_cover_the_samples() -> None:
    audio = np.zeros(10 * HOP + 5, np.float32)
    loud = loudness_db(audio)
    assert frame_count(audio.size) == loud.size == 10
    assert np.all(loud == LOUDNESS_FLOOR_DB)


def test_f0_holds_the_last_pitch_through_rests() -> None:
    f0 = f0_from_notes([(69, 0.2, 0.4), (72, 0.6, 0.8)], int(FRAME_RATE_HZ))
    def at(seconds: float) -> float:
        return float(f0[int(seconds * FRAME_RATE_HZ)])

    a4, c5 = pytest.approx(midi_to_hz(69), rel=1e-6), pytest.approx(midi_to_hz(72), rel=1e-6)
    assert at(0.0) == at(0.3) == at(0.5) == a4   # before, during, and the rest after
    assert at(0.7) == at(0.95) == c5
    assert midi_to_hz(69) == 440.0
