"""The synthesiser eval's metrics: distances, the calibrated sine baseline, f0 and loudness."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from services.generate.audio.controls import (
    FRAME_RATE_HZ,
    HOP,
    LOUDNESS_FLOOR_DB,
    SAMPLE_RATE_HZ,
    loudness_db,
)
from tools.audio_eval import identity
from tools.audio_eval.baseline import sine_baseline
from tools.audio_eval.metrics import (
    f0_cents_errors,
    log_mel,
    log_mel_distance,
    loudness_errors,
    multiscale_spectral_distance,
)
from tools.audio_eval.score import score_loudness

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "generate" / "cadenza-ddsp"


def _tone(hz: float, seconds: float = 1.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    tone = amplitude * (np.sin(2 * np.pi * hz * t) + 0.5 * np.sin(4 * np.pi * hz * t))
    return tone.astype(np.float32)


def test_spectral_distance_of_a_signal_with_itself_is_zero():
    tone = _tone(330.0)
    assert multiscale_spectral_distance(tone, tone) == 0.0
    assert log_mel_distance(log_mel(tone), log_mel(tone)) == 0.0


def test_spectral_distances_grow_with_added_noise():
    tone = _tone(330.0)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(tone.size).astype(np.float32)
    spectral = [multiscale_spectral_distance(tone + level * noise, tone)
                for level in (1e-3, 1e-2, 1e-1)]
    mel = [log_mel_distance(log_mel(tone + level * noise), log_mel(tone))
           for level in (1e-3, 1e-2, 1e-1)]
    assert 0.0 < spectral[0] < spectral[1] < spectral[2]
    assert 0.0 < mel[0] < mel[1] < mel[2]


def test_the_sine_baselines_measured_loudness_matches_its_controls_within_1_db():
    # Four pitches across the instruments' ranges (cello's C2 to a high flute note), each
    # held 1 s under a slow loudness swell between -65 and -30 dB.
    per_note = int(FRAME_RATE_HZ)
    f0 = np.repeat(np.asarray([65.4, 220.0, 880.0, 2093.0], np.float32), per_note)
    swell = -47.5 + 17.5 * np.sin(np.linspace(0, 2 * np.pi, per_note, dtype=np.float32))
    control = np.tile(swell, 4).astype(np.float32)

    measured = loudness_db(sine_baseline(f0, control))

    # Away from the pitch jumps (the 1024-point window spans 4 frames either side).
    keep = np.ones(f0.size, bool)
    for jump in range(0, f0.size + 1, per_note):
        keep[max(0, jump - 5):jump + 5] = False
    assert np.abs(measured - control)[keep].max() < 1.0


def test_the_sine_baseline_is_silent_at_the_loudness_floor():
    f0 = np.full(200, 440.0, np.float32)
    audio = sine_baseline(f0, np.full(200, LOUDNESS_FLOOR_DB, np.float32))
    assert audio.size == 200 * HOP and not audio.any()


@pytest.mark.parametrize("detune_cents", [0.0, 30.0, -50.0])
def test_cents_error_of_a_detuned_sine_is_the_detuning(detune_cents):
    control_hz = 440.0
    n_frames = int(FRAME_RATE_HZ)
    audio = _tone(control_hz * 2 ** (detune_cents / 1200), seconds=n_frames * HOP / SAMPLE_RATE_HZ)
    control = np.full(n_frames, control_hz, np.float32)

    errors, loud = f0_cents_errors(audio, control, np.full(n_frames, -40.0, np.float32), 69, 69)

    assert loud == n_frames and errors.size > 0.8 * n_frames  # voiced nearly everywhere
    # pYIN's pitch bins are 10 cents wide (librosa's default resolution).
    assert abs(float(np.median(errors)) - abs(detune_cents)) <= 5.0


def test_cents_error_ignores_quiet_frames():
    n_frames = int(FRAME_RATE_HZ)
    audio = _tone(440.0, seconds=n_frames * HOP / SAMPLE_RATE_HZ)
    quiet = np.full(n_frames, -80.0, np.float32)
    errors, loud = f0_cents_errors(audio, np.full(n_frames, 440.0, np.float32), quiet, 69, 69)
    assert loud == 0 and errors.size == 0


def test_loudness_error_is_zero_on_the_reference_and_6_db_at_twice_the_amplitude():
    tone = _tone(330.0)
    control = loudness_db(tone)
    assert float(np.mean(loudness_errors(tone, control))) == pytest.approx(0.0, abs=1e-4)
    assert float(np.mean(loudness_errors(2 * tone, control))) == pytest.approx(6.02, abs=0.05)


def test_score_loudness_follows_attack_velocity_and_release():
    envelope = {"attack_db": [-50.0, -40.0, -45.0], "release_db": [-10.0, -20.0],
                "db_per_velocity": 0.5, "reference_velocity": 100}
    # Two notes: frames 0-4 at velocity 100, then a gap, then frames 10-11 at velocity 80.
    notes = np.asarray([[60, 0.0, 5 / FRAME_RATE_HZ, 100],
                        [62, 10 / FRAME_RATE_HZ, 12 / FRAME_RATE_HZ, 80]], np.float32)

    curve = score_loudness(notes, envelope, 16)

    np.testing.assert_allclose(curve[:5], [-50, -40, -45, -45, -45])      # last value held
    np.testing.assert_allclose(curve[5:7], [-55, -65])                    # release
    np.testing.assert_allclose(curve[7:10], LOUDNESS_FLOOR_DB)
    np.testing.assert_allclose(curve[10:12], [-60, -50])                  # 10 dB quieter
    np.testing.assert_allclose(curve[12:14], [-60, -70])


def test_fixed_windows_skip_quiet_stretches():
    frames = identity.WINDOW_FRAMES
    control = np.full(4 * frames, -40.0, np.float32)
    control[frames:2 * frames] = -90.0
    assert identity.fixed_windows(control) == [0, 2 * frames, 3 * frames]


def test_features_are_80_finite_numbers_and_tell_two_timbres_apart():
    window = identity.WINDOW_FRAMES * HOP
    t = np.arange(window) / SAMPLE_RATE_HZ
    pure = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    bright = (0.2 * np.sign(np.sin(2 * np.pi * 440 * t))).astype(np.float32)
    a, b = identity.features(pure), identity.features(bright)
    assert a.shape == (80,) and np.isfinite(a).all()
    assert np.linalg.norm(a - b) > 1.0


def test_the_committed_model_renders_exactly_the_controls_length():
    from tools.audio_eval.render import NeuralSynth

    if not (MODEL / "model.onnx").is_file():
        pytest.skip("no cadenza-ddsp model folder")
    synth = NeuralSynth(MODEL, threads=1)
    assert synth.names == [x["name"] for x in json.loads((MODEL / "model.json").read_text())
                           ["instruments"]]
    f0 = np.full(50, 330.0, np.float32)
    audio = synth.render(f0, np.full(50, -40.0, np.float32), synth.timbre({"violin": 1.0}))
    again = synth.render(f0, np.full(50, -40.0, np.float32), synth.timbre({"violin": 1.0}))
    assert audio.shape == (50 * HOP,) and np.isfinite(audio).all()
    np.testing.assert_array_equal(audio, again)   # same seed, same samples
