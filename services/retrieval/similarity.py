"""Weighted similarity S(x) = sum_i w_i f_i(x) over the feature groups' unit blocks.

Each group's block is a unit vector, so <q_i, x_i> is that group's cosine similarity.
Scaling the query's blocks by w_i makes one dot product over the concatenated vector
equal S(x) exactly, so the store computes it in a single query.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from cadenza.kit.validate import check_weights
from services.retrieval.feature_blocks import feature_blocks
from services.retrieval.feature_groups import FEATURE_GROUPS
from services.retrieval.model import AudioFeatures

DEFAULT_WEIGHTS = {g.name: g.default_weight for g in FEATURE_GROUPS}
# Where each group's block sits inside the concatenated audio vector.
SLICES: dict[str, slice] = {}
_start = 0
for _group in FEATURE_GROUPS:
    SLICES[_group.name] = slice(_start, _start + _group.dimensions)
    _start += _group.dimensions


def resolve_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """The caller's weights merged over DEFAULT_WEIGHTS, checked and normalised to sum 1.

    Raises InvalidArgument naming `weights[<group>]` for an unknown group or a negative or
    non-finite value, and `weights` when every weight is zero.
    """
    return check_weights("weights", weights, DEFAULT_WEIGHTS)


def audio_vector(features: AudioFeatures) -> np.ndarray:
    """The groups' unit blocks concatenated in FEATURE_GROUPS order."""
    blocks = feature_blocks(features)
    return np.concatenate([blocks[g.name] for g in FEATURE_GROUPS]).astype(np.float32)


def weighted_query(blocks_vector: np.ndarray, weights: dict[str, float]) -> np.ndarray:
    """Scales each unit block by its weight: dot(query, x) = sum_i w_i * <q_i, x_i>."""
    query = blocks_vector.astype(np.float32).copy()
    for name, part in SLICES.items():
        query[part] *= weights[name]
    return query


def contributions(query: np.ndarray, vector: np.ndarray) -> dict[str, float]:
    """w_i * f_i(x) per group, from the weighted query and a stored vector."""
    return {name: float(np.dot(query[part], vector[part])) for name, part in SLICES.items()}


def example_blocks(positives: list[np.ndarray], negatives: list[np.ndarray]) -> np.ndarray:
    """Per group: the unit direction of 2*mean(positives) - mean(negatives) (Qdrant's
    average_vector rule), or of mean(positives) alone without negatives."""
    target = np.mean(positives, axis=0)
    if negatives:
        target = 2 * target - np.mean(negatives, axis=0)
    out: np.ndarray = np.zeros_like(target)
    fallback = np.mean(positives, axis=0)
    for part in SLICES.values():
        block = target[part]
        norm = float(np.linalg.norm(block))
        if norm < 1e-6:
            block, norm = fallback[part], float(np.linalg.norm(fallback[part]))
        out[part] = block / max(norm, 1e-12)
    return out
