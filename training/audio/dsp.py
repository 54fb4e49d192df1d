"""The synthesiser's signal processing in torch, differentiable, for training.

Operation for operation the same as services/generate/audio/dsp.py (numpy, served);
tests/training/test_audio_dsp.py holds the two to the same samples.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from services.generate.audio.controls import HOP, SAMPLE_RATE_HZ


def upsample(frames: torch.Tensor) -> torch.Tensor:
    """[B, T, C] frame values to [B, T*HOP, C] samples, linear between frame starts."""
    batch, n_frames, channels = frames.shape
    following = torch.cat([frames[:, 1:], frames[:, -1:]], dim=1)
    weight = (torch.arange(HOP, dtype=frames.dtype) / HOP).view(1, 1, HOP, 1)
    mixed = frames[:, :, None] * (1.0 - weight) + following[:, :, None] * weight
    return mixed.reshape(batch, n_frames * HOP, channels)


def harmonic(f0_hz: torch.Tensor, amplitudes: torch.Tensor) -> torch.Tensor:
    """f0 [B, T] Hz and amplitudes [B, T, H] to [B, T*HOP] samples.

    The amplitudes are linear between frame starts, so each frame's samples are a blend
    of two matrix products with its own and the next frame's amplitudes: 2.3x faster
    (forward and backward) than upsampling [B, T*HOP, H] amplitudes first.
    """
    f0 = upsample(f0_hz[..., None])[..., 0]
    phase = torch.cumsum(2.0 * math.pi * f0.double() / SAMPLE_RATE_HZ, dim=1)
    phase = torch.remainder(phase, 2.0 * math.pi).float()
    batch, n_frames, n_harmonics = amplitudes.shape
    k = torch.arange(1, n_harmonics + 1, dtype=torch.float32)
    sines = torch.sin(phase.view(batch, n_frames, HOP, 1) * k)          # [B, T, HOP, H]
    following = torch.cat([amplitudes[:, 1:], amplitudes[:, -1:]], dim=1)
    now = torch.matmul(sines, amplitudes[..., None])[..., 0]           # [B, T, HOP]
    then = torch.matmul(sines, following[..., None])[..., 0]
    weight = torch.arange(HOP, dtype=torch.float32) / HOP
    samples: torch.Tensor = (now * (1.0 - weight) + then * weight).reshape(batch, -1)
    return samples


def filtered_noise(magnitudes: torch.Tensor, white: torch.Tensor) -> torch.Tensor:
    """White noise [B, T, HOP] shaped by magnitudes [B, T, N]; [B, T*HOP] samples."""
    taps = 2 * (magnitudes.shape[2] - 1)
    ir = torch.fft.irfft(magnitudes, n=taps, dim=2)
    window = torch.hann_window(taps, periodic=True)
    ir = torch.roll(ir, taps // 2, dims=2) * window
    size = 2 * HOP
    shaped = torch.fft.irfft(torch.fft.rfft(ir, size, dim=2) * torch.fft.rfft(white, size, dim=2),
                             size, dim=2)
    head, tail = shaped[..., :HOP], shaped[..., HOP:]
    out: torch.Tensor = head + F.pad(tail[:, :-1], (0, 0, 1, 0))
    return out.reshape(out.shape[0], -1)


def reverb(dry: torch.Tensor, impulse_response: torch.Tensor) -> torch.Tensor:
    """Dry [B, S] plus its convolution with the room [L]; cut to S samples for the loss."""
    n = dry.shape[1] + impulse_response.shape[0]
    wet = torch.fft.irfft(torch.fft.rfft(dry, n) * torch.fft.rfft(impulse_response, n), n)
    out: torch.Tensor = dry + wet[:, : dry.shape[1]]
    return out
