"""The DDSP decoder: f0, loudness and a timbre embedding in, synthesiser controls out.

Engel et al., "DDSP: Differentiable Digital Signal Processing" (ICLR 2020), the
"RNN-FC" decoder at a smaller size: one MLP per input, a GRU over their concatenation, an
MLP over the GRU's output and the inputs, then a projection to the overall amplitude, the
distribution over harmonics and the noise bands. The exported graph is this module's
`forward` (frame rate only); the learned reverb is a separate tensor the DSP applies.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from services.generate.audio.controls import LOUDNESS_FLOOR_DB, SAMPLE_RATE_HZ

REVERB_S = 0.5


def mlp(n_in: int, hidden: int, layers: int = 2) -> nn.Sequential:
    """Dense, LayerNorm and leaky ReLU, `layers` times (DDSP's fc_stack)."""
    blocks: list[nn.Module] = []
    for i in range(layers):
        blocks += [nn.Linear(n_in if i == 0 else hidden, hidden), nn.LayerNorm(hidden),
                   nn.LeakyReLU()]
    return nn.Sequential(*blocks)


def exp_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """DDSP's scaled sigmoid: positive, at most 2, with a gradient over a wide range."""
    return 2.0 * torch.sigmoid(x) ** math.log(10.0) + 1e-7


class Decoder(nn.Module):
    """Frame-rate controls to harmonic amplitudes [B, T, H] and noise magnitudes [B, T, N]."""

    def __init__(self, n_instruments: int, *, embedding_dim: int = 16, hidden: int = 192,
                 n_harmonics: int = 64, n_noise_bands: int = 65) -> None:
        super().__init__()
        self.n_harmonics = n_harmonics
        self.n_noise_bands = n_noise_bands
        self.instruments = nn.Embedding(n_instruments, embedding_dim)
        nn.init.normal_(self.instruments.weight, std=1.0)
        self.f0_in = mlp(1, hidden)
        self.loudness_in = mlp(1, hidden)
        self.timbre_in = mlp(embedding_dim, hidden)
        self.gru = nn.GRU(3 * hidden, hidden, batch_first=True)
        self.out = mlp(4 * hidden, hidden)
        self.project = nn.Linear(hidden, 1 + n_harmonics + n_noise_bands)
        # Start quiet in the noise (DDSP's -5 bias) so the harmonics learn pitch first.
        with torch.no_grad():
            self.project.bias[1 + n_harmonics:] -= 5.0
        taps = int(REVERB_S * SAMPLE_RATE_HZ)
        decay = torch.exp(-torch.arange(taps, dtype=torch.float32) / (0.05 * SAMPLE_RATE_HZ))
        self.reverb = nn.Parameter(1e-3 * torch.randn(taps) * decay)

    def room(self) -> torch.Tensor:
        """The learned impulse response, without its first tap (the dry path is added)."""
        return torch.cat([torch.zeros(1), self.reverb[1:]])

    def forward(self, f0_hz: torch.Tensor, loudness_db: torch.Tensor, timbre: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """f0 [B, T] Hz, loudness [B, T] dB, timbre [B, E] -> amplitudes, noise magnitudes."""
        pitch = 12.0 * torch.log2(torch.clamp(f0_hz, min=1.0) / 440.0) + 69.0
        f0 = (pitch / 127.0)[..., None]
        loudness = ((loudness_db - LOUDNESS_FLOOR_DB) / -LOUDNESS_FLOOR_DB)[..., None]
        frames = f0_hz.shape[1]
        colour = timbre[:, None, :].expand(-1, frames, -1)
        inputs = torch.cat([self.f0_in(f0), self.loudness_in(loudness), self.timbre_in(colour)],
                           dim=-1)
        hidden, _ = self.gru(inputs)
        raw = self.project(self.out(torch.cat([hidden, inputs], dim=-1)))
        amplitude = exp_sigmoid(raw[..., :1])
        distribution = exp_sigmoid(raw[..., 1:1 + self.n_harmonics])
        # Harmonics at or above Nyquist would alias: zero them, then renormalise the rest.
        k = torch.arange(1, self.n_harmonics + 1, dtype=f0_hz.dtype)
        audible = (f0_hz[..., None] * k < SAMPLE_RATE_HZ / 2).to(distribution.dtype)
        distribution = distribution * audible
        distribution = distribution / torch.clamp(distribution.sum(-1, keepdim=True), min=1e-7)
        noise = exp_sigmoid(raw[..., 1 + self.n_harmonics:])
        return amplitude * distribution, noise
