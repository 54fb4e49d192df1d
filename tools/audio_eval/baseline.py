"""The plain baseline: one sine at the control f0 whose level follows the control loudness.

The dB-to-amplitude mapping inverts controls.loudness_db for a steady sine by measuring
it: a unit-amplitude sine at each pitch of a quarter-semitone grid (MIDI 12-124) is
rendered and its median loudness taken (A-weighting makes that depend on pitch: -31 dB
at 1 kHz, -57 dB at 65 Hz). A frame at L dB and f0 then gets amplitude
10^((L - gain(f0)) / 20), gain interpolated on the grid; frames at the loudness floor
get 0. tests/tools/test_audio_eval.py holds the measured loudness to the controls.
"""

from __future__ import annotations

import functools

import librosa
import numpy as np
import numpy.typing as npt

from services.generate.audio.controls import LOUDNESS_FLOOR_DB, SAMPLE_RATE_HZ, loudness_db
from services.generate.audio.dsp import harmonic

Floats = npt.NDArray[np.float32]

GRID_MIDI = np.arange(12.0, 124.01, 0.25)
CALIBRATION_S = 0.4


@functools.lru_cache(maxsize=1)
def _gain_db() -> Floats:
    """Loudness (dB) of a unit-amplitude steady sine at each GRID_MIDI pitch."""
    t = np.arange(int(CALIBRATION_S * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    gains = []
    for pitch in GRID_MIDI:
        sine = np.sin(2.0 * np.pi * float(librosa.midi_to_hz(pitch)) * t).astype(np.float32)
        measured = loudness_db(sine)
        gains.append(float(np.median(measured[8:-8])))  # away from the edges' half windows
    return np.asarray(gains, np.float32)


def sine_gain_db(f0_hz: Floats) -> Floats:
    """Loudness in dB of a unit-amplitude sine at each f0 (interpolated on the grid)."""
    pitch = np.asarray(librosa.hz_to_midi(np.maximum(f0_hz, 1.0)), np.float64)
    return np.asarray(np.interp(pitch, GRID_MIDI, _gain_db()), np.float32)


def sine_amplitudes(f0_hz: Floats, control_db: Floats) -> Floats:
    """Per-frame amplitude that puts a sine at f0 at the control loudness (0 at the floor)."""
    amplitude = 10.0 ** ((control_db - sine_gain_db(f0_hz)) / 20.0)
    return np.where(control_db > LOUDNESS_FLOOR_DB + 1e-3, amplitude, 0.0).astype(np.float32)


def sine_baseline(f0_hz: Floats, control_db: Floats) -> Floats:
    """The baseline's samples: len(f0_hz) * HOP, amplitudes linear between frame starts."""
    return harmonic(f0_hz, sine_amplitudes(f0_hz, control_db)[:, None])
