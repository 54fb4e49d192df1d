"""The motif model: DDIM sampling with classifier-free guidance over the inference port.

The network (an eps-predicting U-Net, training/image/model.py) is one backend call per
DDIM step; the schedule, guidance and update run here in numpy. With guidance g the
noise estimate is eps_u + g (eps_c - eps_u): 0 ignores the prompt, 1 is the plain
conditional model, larger follows the prompt harder (and loses variety). Conditional and
unconditional halves go through the network as one batch.

Each sample's starting noise comes from (seed, index), so sample i of a request is the
same whatever the number of samples asked for.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import numpy as np
import numpy.typing as npt

from services.generate import metrics
from services.generate.image.schedule import alpha_bar, ddim_step, ddim_timesteps
from services.generate.inference.backend import InferenceBackend, ModelSpec

Floats = npt.NDArray[np.float32]
# eps for (x [B, C, S, S], t [B, 1], text [B, D]); the backend call, or torch in the eval.
Denoise = Callable[[Floats, Floats, Floats], Awaitable[Floats]]


def initial_noise(seed: int, count: int, shape: tuple[int, ...]) -> Floats:
    """[count, *shape] standard normal noise, sample i drawn from (seed, i) alone."""
    return np.stack([np.random.default_rng([seed, i]).standard_normal(shape, np.float32)
                     for i in range(count)])


async def sample(denoise: Denoise, text: Floats, shape: tuple[int, ...], *, steps: int,
                 guidance: float, seed: int,
                 on_step: Callable[[int], Awaitable[None]] | None = None) -> Floats:
    """DDIM samples [N, *shape] in [-1, 1] for the text embeddings [N, D]."""
    count = text.shape[0]
    x = initial_noise(seed, count, shape)
    bars = alpha_bar()
    timesteps = ddim_timesteps(steps)
    blank = np.zeros_like(text)
    for i, t in enumerate(timesteps):
        a_t = float(bars[t])
        a_prev = float(bars[timesteps[i + 1]]) if i + 1 < len(timesteps) else 1.0
        eps = await guided(denoise, x, float(t), text, blank, guidance)
        x = ddim_step(x, eps, a_t, a_prev)
        if on_step is not None:
            await on_step(i + 1)
    return x


async def guided(denoise: Denoise, x: Floats, t: float, text: Floats, blank: Floats,
                 guidance: float) -> Floats:
    """The classifier-free-guided noise estimate; one network half when g is 0 or 1."""
    stamps = np.full((x.shape[0], 1), t, np.float32)
    if guidance == 1.0:
        return await denoise(x, stamps, text)
    if guidance == 0.0:
        return await denoise(x, stamps, blank)
    both = await denoise(np.concatenate([x, x]), np.concatenate([stamps, stamps]),
                         np.concatenate([text, blank]))
    conditional, unconditional = both[:x.shape[0]], both[x.shape[0]:]
    out: Floats = unconditional + guidance * (conditional - unconditional)
    return out


def to_rgba(images: Floats) -> npt.NDArray[np.uint8]:
    """[N, 4, S, S] premultiplied RGBA in [-1, 1] as straight-alpha bytes [N, S, S, 4]."""
    x = np.clip((images + 1.0) / 2.0, 0.0, 1.0).transpose(0, 2, 3, 1).copy()
    alpha = x[..., 3:]
    # Colour is meaningless where nothing is drawn; un-premultiply only where something is.
    x[..., :3] = np.where(alpha > 1e-3, x[..., :3] / np.maximum(alpha, 1e-3), 0.0)
    out: npt.NDArray[np.uint8] = np.round(np.clip(x, 0.0, 1.0) * 255).astype(np.uint8)
    return out


class MotifModel:
    """A loaded motif model: samples behind the backend, one call per DDIM step."""

    def __init__(self, spec: ModelSpec, backend: InferenceBackend) -> None:
        self.spec = spec
        self.name = spec.name
        self.version = spec.version
        self.backend = backend
        shape = spec.picture
        self.shape = (shape.channels, shape.size, shape.size)
        self.text_size = shape.text_size
        self.default_guidance = shape.default_guidance
        self.default_steps = shape.default_steps

    def sampling(self, guidance: float | None, steps: int | None) -> tuple[float, int]:
        """The caller's guidance and steps, the model's defaults where unset."""
        return (self.default_guidance if guidance is None else guidance,
                self.default_steps if steps is None else steps)

    async def denoise(self, x: Floats, t: Floats, text: Floats) -> Floats:
        """One network call: the noise predicted in x at timesteps t."""
        started = time.perf_counter()
        out = await self.backend.run(self.name, {"x": x, "t": t, "text": text})
        metrics.INFERENCE_SECONDS.labels(self.backend.name, self.name).observe(
            time.perf_counter() - started)
        eps = out["eps"]
        if eps.shape != x.shape:
            raise RuntimeError(f"{self.name} returned eps of shape {eps.shape}; expected "
                               f"{x.shape}")
        return eps.astype(np.float32)

    async def sample(self, text: Floats, *, steps: int, guidance: float, seed: int,
                     on_step: Callable[[int], Awaitable[None]] | None = None
                     ) -> npt.NDArray[np.uint8]:
        """RGBA motifs [N, S, S, 4] for the text embeddings [N, D]."""
        if text.ndim != 2 or text.shape[1] != self.text_size:
            raise ValueError(f"{self.name} reads text embeddings of {self.text_size} "
                             f"numbers; got shape {text.shape}")
        images = await sample(self.denoise, text.astype(np.float32), self.shape,
                              steps=steps, guidance=guidance, seed=seed, on_step=on_step)
        return to_rgba(images)

    async def warm_up(self) -> None:
        """One real call, so the first caller does not pay for the session's start."""
        await self.denoise(np.zeros((1, *self.shape), np.float32), np.zeros((1, 1), np.float32),
                           np.zeros((1, self.text_size), np.float32))
