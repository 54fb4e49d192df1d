"""The DDSP decoder: what it outputs, its export to ONNX, and the envelope fit for scores."""

from __future__ import annotations

import pathlib

import numpy as np
import torch

from services.generate.audio.controls import FRAME_RATE_HZ, HOP, SAMPLE_RATE_HZ
from training.audio.data import Line
from training.audio.envelope import RELEASE_FRAMES, fit_envelopes
from training.audio.export import export_onnx
from training.audio.instruments import INSTRUMENTS
from training.audio.model import Decoder


def _controls(frames: int = 40) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    f0 = torch.linspace(80.0, 2000.0, frames).repeat(2, 1)
    loud = torch.full((2, frames), -40.0)
    return f0, loud, torch.randn(2, 16)


def test_harmonics_above_nyquist_are_silent_and_amplitudes_positive() -> None:
    torch.manual_seed(0)
    amplitudes, noise = Decoder(len(INSTRUMENTS))(*_controls())
    assert amplitudes.shape == (2, 40, 64) and noise.shape == (2, 40, 65)
    k = torch.arange(1, 65)
    above = (torch.linspace(80.0, 2000.0, 40)[:, None] * k) >= SAMPLE_RATE_HZ / 2
    assert torch.all(amplitudes[:, above] == 0)
    assert torch.all(amplitudes[:, ~above] > 0) and torch.all(noise > 0)


def test_onnx_export_matches_torch_at_any_length(tmp_path: pathlib.Path) -> None:
    import onnxruntime as ort

    torch.manual_seed(0)
    model = Decoder(len(INSTRUMENTS)).eval()
    path = tmp_path / "model.onnx"
    export_onnx(model, path)  # raises when onnxruntime and torch differ by > 1e-4
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    f0, loud, timbre = _controls(frames=301)
    got = session.run(None, {"f0_hz": f0.numpy(), "loudness_db": loud.numpy(),
                             "timbre": timbre.numpy()})
    with torch.no_grad():
        want = model(f0, loud, timbre)
    for have, expected in zip(got, want, strict=True):
        np.testing.assert_allclose(have, expected.numpy(), atol=1e-4)


def test_envelope_fit_recovers_velocity_slope_and_release() -> None:
    # A synthetic instrument: 60 dB below full scale at velocity 100, 0.3 dB per velocity
    # step, dropping 1 dB a frame after note-off.
    lines = []
    frames = int(8 * FRAME_RATE_HZ)
    for i, velocity in enumerate(range(40, 121, 10)):
        loud = np.full(frames, -100.0, np.float32)
        notes = []
        for start_s in (0.5, 3.0, 5.5):
            first, last = int(start_s * FRAME_RATE_HZ), int((start_s + 1.0) * FRAME_RATE_HZ)
            loud[first:last] = -60.0 + 0.3 * (velocity - 100)
            loud[last:last + RELEASE_FRAMES] = loud[last - 1] - np.arange(1, RELEASE_FRAMES + 1)
            notes.append((60.0, start_s, start_s + 1.0, float(velocity)))
        lines.append(Line(f"p{i}", 0, np.zeros(frames * HOP, np.float32),
                          np.full(frames, 261.6, np.float32), loud,
                          np.asarray(notes, np.float32)))
    envelope = fit_envelopes(lines)[INSTRUMENTS[0].name]
    assert abs(envelope["db_per_velocity"] - 0.3) < 0.01
    assert abs(envelope["attack_db"][10] - -60.0) < 0.1
    assert abs(envelope["release_db"][9] - -10.0) < 0.1
