"""The served numpy DSP and the trained torch DSP make the same samples from the same frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from services.generate.audio import dsp as served
from services.generate.audio.controls import HOP, SAMPLE_RATE_HZ
from training.audio import dsp as trained


@pytest.fixture
def frames() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    n = 2 * served.CHUNK_FRAMES + 37  # crosses the numpy chunk boundaries
    return {"f0": np.geomspace(60.0, 1500.0, n).astype(np.float32),
            "amplitudes": (0.02 * rng.random((n, 64))).astype(np.float32),
            "noise": rng.random((n, 65)).astype(np.float32),
            "white": served.white_noise(n, seed=5),
            "room": (0.01 * rng.standard_normal(800) * np.exp(-np.arange(800) / 80.0)
                     ).astype(np.float32)}


def test_harmonic_bank_matches_torch(frames: dict[str, np.ndarray]) -> None:
    ours = served.harmonic(frames["f0"], frames["amplitudes"])
    theirs = trained.harmonic(torch.from_numpy(frames["f0"])[None],
                              torch.from_numpy(frames["amplitudes"])[None])[0].numpy()
    assert ours.shape == (frames["f0"].size * HOP,)
    np.testing.assert_allclose(ours, theirs, atol=2e-5)


def test_filtered_noise_matches_torch(frames: dict[str, np.ndarray]) -> None:
    ours = served.filtered_noise(frames["noise"], frames["white"])
    theirs = trained.filtered_noise(torch.from_numpy(frames["noise"])[None],
                                    torch.from_numpy(frames["white"])[None])[0].numpy()
    np.testing.assert_allclose(ours, theirs, atol=2e-5)


def test_reverb_matches_torch_over_the_input_and_rings_after(frames: dict[str, np.ndarray]
                                                             ) -> None:
    dry = served.harmonic(frames["f0"], frames["amplitudes"])
    ours = served.reverb(dry, frames["room"])
    theirs = trained.reverb(torch.from_numpy(dry)[None], torch.from_numpy(frames["room"]))[0]
    np.testing.assert_allclose(ours[: dry.size], theirs.numpy(), atol=2e-5)
    assert ours.size == dry.size + frames["room"].size - 1
    assert np.abs(ours[dry.size:]).max() > 0


def test_a_single_harmonic_is_a_sine_at_f0() -> None:
    n = 250
    amplitudes = np.zeros((n, 64), np.float32)
    amplitudes[:, 0] = 0.5
    audio = served.harmonic(np.full(n, 440.0, np.float32), amplitudes)
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE_HZ / audio.size
    assert abs(peak_hz - 440.0) < 1.0
    assert abs(np.abs(audio).max() - 0.5) < 1e-3


def test_noise_follows_its_band_magnitudes() -> None:
    n = 400
    low = np.zeros((n, 65), np.float32)
    low[:, :8] = 1.0  # energy below ~1 kHz only
    audio = served.filtered_noise(low, served.white_noise(n, seed=1))
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    cut = int(2000 * audio.size / SAMPLE_RATE_HZ)
    assert spectrum[:cut].sum() > 50 * spectrum[cut:].sum()
    same = served.filtered_noise(low, served.white_noise(n, seed=1))
    np.testing.assert_array_equal(audio, same)
