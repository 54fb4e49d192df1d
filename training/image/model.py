"""The motif denoiser: a small U-Net predicting the noise in x_t, given t and a text embedding.

The text (a MiniLM sentence embedding, 384 numbers) and the timestep are one embedding
that scales and shifts every residual block (FiLM), as in improved DDPM; self-attention
runs at 8x8. A zero vector is the "no text" embedding classifier-free guidance needs
(MiniLM's are unit vectors, so it is never a real caption's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class UNetConfig:
    """Widths and depth; the defaults are the served model's."""

    channels: int = 4            # premultiplied RGBA
    size: int = 32
    base: int = 64
    multipliers: tuple[int, ...] = (1, 2, 2)
    blocks_per_level: int = 2
    attention_at: tuple[int, ...] = (8,)
    text_size: int = 384
    embedding: int = 256
    groups: int = 16


def timestep_features(t: torch.Tensor, size: int) -> torch.Tensor:
    """Sinusoidal features of t (float, 0..T-1), [B] -> [B, size]."""
    half = size // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class ResBlock(nn.Module):
    """Two 3x3 convolutions with the embedding's scale and shift between them."""

    def __init__(self, c_in: int, c_out: int, embedding: int, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(embedding, 2 * c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(cast(torch.Tensor, self.conv2.bias))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W] refined under the embedding [B, E]."""
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return cast(torch.Tensor, self.skip(x) + self.conv2(F.silu(h)))


class Attention(nn.Module):
    """Single-head self-attention over the pixels of a feature map."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(cast(torch.Tensor, self.out.bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x plus what every pixel gathers from the others."""
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        weights = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(c), dim=-1)
        return cast(torch.Tensor, x + self.out((v @ weights.transpose(1, 2)).reshape(b, c, h, w)))


class UNet(nn.Module):
    """eps(x_t, t, text): [B, 4, 32, 32], [B], [B, 384] -> [B, 4, 32, 32]."""

    def __init__(self, config: UNetConfig = UNetConfig()) -> None:
        super().__init__()
        self.config = c = config
        e = c.embedding
        self.time = nn.Sequential(nn.Linear(c.base, e), nn.SiLU(), nn.Linear(e, e))
        self.text = nn.Sequential(nn.Linear(c.text_size, e), nn.SiLU(), nn.Linear(e, e))
        self.stem = nn.Conv2d(c.channels, c.base, 3, padding=1)
        self.down = nn.ModuleList()
        widths = [c.base]
        width, size = c.base, c.size
        for level, mult in enumerate(c.multipliers):
            for _ in range(c.blocks_per_level):
                out = c.base * mult
                self.down.append(nn.ModuleList([ResBlock(width, out, e, c.groups),
                                                _attention(out, size, c)]))
                width = out
                widths.append(width)
            if level < len(c.multipliers) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(width, width, 3, stride=2,
                                                          padding=1)]))
                widths.append(width)
                size //= 2
        self.middle = nn.ModuleList([ResBlock(width, width, e, c.groups),
                                     Attention(width, c.groups),
                                     ResBlock(width, width, e, c.groups)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(c.multipliers))):
            for _ in range(c.blocks_per_level + 1):
                out = c.base * mult
                self.up.append(nn.ModuleList([ResBlock(width + widths.pop(), out, e, c.groups),
                                              _attention(out, size, c)]))
                width = out
            if level > 0:
                self.up.append(nn.ModuleList([nn.Upsample(scale_factor=2, mode="nearest"),
                                              nn.Conv2d(width, width, 3, padding=1)]))
                size *= 2
        self.head = nn.Sequential(nn.GroupNorm(c.groups, width), nn.SiLU(),
                                  nn.Conv2d(width, c.channels, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """The noise predicted in x_t at timesteps t (float) for the text embeddings."""
        emb = self.time(timestep_features(t, self.config.base)) + self.text(text)
        h = self.stem(x)
        skips = [h]
        for layer in self.down:
            first, *rest = cast(nn.ModuleList, layer)
            h = rest[0](first(h, emb)) if isinstance(first, ResBlock) else first(h)
            skips.append(h)
        before, attention, after = self.middle
        h = after(attention(before(h, emb)), emb)
        for layer in self.up:
            first, second = cast(nn.ModuleList, layer)
            h = (second(first(torch.cat([h, skips.pop()], dim=1), emb))
                 if isinstance(first, ResBlock) else second(first(h)))
        return cast(torch.Tensor, self.head(h))


def _attention(channels: int, size: int, config: UNetConfig) -> nn.Module:
    return Attention(channels, config.groups) if size in config.attention_at else nn.Identity()
