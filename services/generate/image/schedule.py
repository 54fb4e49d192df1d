"""The diffusion schedule the motif model was trained on, and DDIM's deterministic step.

Training (training/image/train.py) and sampling (services/generate/image/motif.py) read
the schedule from here, so they cannot drift apart. Cosine schedule of improved DDPM
(Nichol and Dhariwal, 2021), 1,000 steps; DDIM (Song et al., 2021) with eta = 0.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

TRAIN_STEPS = 1000
_OFFSET = 0.008
_MAX_BETA = 0.999


def alpha_bar() -> npt.NDArray[np.float64]:
    """Cumulative signal fraction after each of the TRAIN_STEPS noising steps, [T]."""
    s = np.arange(TRAIN_STEPS + 1, dtype=np.float64) / TRAIN_STEPS
    f = np.cos((s + _OFFSET) / (1 + _OFFSET) * np.pi / 2) ** 2
    betas = np.clip(1.0 - f[1:] / f[:-1], 0.0, _MAX_BETA)
    out: npt.NDArray[np.float64] = np.cumprod(1.0 - betas)
    return out


def ddim_timesteps(steps: int) -> npt.NDArray[np.int64]:
    """`steps` training timesteps evenly spaced from the noisiest down to 0, descending."""
    if not 1 <= steps <= TRAIN_STEPS:
        raise ValueError(f"steps must be in [1, {TRAIN_STEPS}], got {steps}")
    return np.round(np.linspace(TRAIN_STEPS - 1, 0, steps)).astype(np.int64)


def ddim_step(x: npt.NDArray[np.float32], eps: npt.NDArray[np.float32], a_t: float,
              a_prev: float) -> npt.NDArray[np.float32]:
    """x at the previous (less noisy) timestep, deterministically (eta = 0).

    The predicted clean image is clipped to the data range [-1, 1] first, which keeps
    few-step sampling from overshooting.
    """
    x0 = np.clip((x - np.sqrt(1.0 - a_t) * eps) / np.sqrt(a_t), -1.0, 1.0)
    eps = (x - np.sqrt(a_t) * x0) / np.sqrt(1.0 - a_t)
    out: npt.NDArray[np.float32] = (np.sqrt(a_prev) * x0 + np.sqrt(1.0 - a_prev) * eps
                                    ).astype(np.float32)
    return out
