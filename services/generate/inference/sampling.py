"""Next-token choice: grammar mask, temperature, top-k, top-p, from a seeded generator."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Sampling:
    """How the next token is drawn: temperature, top-k and top-p."""

    temperature: float = 1.0
    top_k: int = 0      # 0: no cut
    top_p: float = 1.0


def sample(logits: npt.NDArray[np.floating], allowed: npt.NDArray[np.bool_], sampling: Sampling,
           rng: np.random.Generator) -> int:
    """One token from the allowed ones. Same logits, mask and generator state: same token."""
    scores = np.where(allowed, logits.astype(np.float64) / sampling.temperature, -np.inf)
    order = np.argsort(-scores, kind="stable")
    n_allowed = int(allowed.sum())
    if n_allowed == 0:
        raise ValueError("the grammar allows no token here")
    keep = n_allowed if sampling.top_k <= 0 else min(sampling.top_k, n_allowed)
    order = order[:keep]
    probs = np.exp(scores[order] - scores[order[0]])
    probs /= probs.sum()
    if sampling.top_p < 1.0:
        # Smallest prefix whose mass reaches top_p (always at least the best token).
        cut = int(np.searchsorted(np.cumsum(probs), sampling.top_p - 1e-9)) + 1
        order, probs = order[:cut], probs[:cut] / probs[:cut].sum()
    index = int(np.searchsorted(np.cumsum(probs), rng.random(), side="right"))
    return int(order[min(index, len(order) - 1)])
