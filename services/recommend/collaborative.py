"""The collaborative signal from the published model: item rows, ALS factors, fold-in.

Scores are computed from the user's *current* engagements every time: the neighbour
models sum the stored rows of the items the user engaged with, and ALS folds the user in
against the stored item factors. So a play recorded a second ago already counts, and a
user who arrived after the last training run is served like everyone else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.recommend.events import Engagement
from services.recommend.fitting import confidence
from services.recommend.model import ALS, EASE, ModelStore, ServingModel

MAX_HISTORY = 200  # the user's strongest engagements that drive the collaborative signal
PER_MEMBER = 300  # candidates each member contributes


@dataclass(frozen=True)
class Proposal:
    """The tracks the collaborative signal proposes (model item indices), and why."""

    items: np.ndarray  # item indices, ascending
    scores: np.ndarray  # in [0, 1], per item
    # Per item, the user's item that contributed most (neighbour models); -1 for ALS-only.
    because: np.ndarray


async def collaborative(models: ModelStore, model: ServingModel, history: list[Engagement],
                        exclude: set[str]) -> Proposal:
    """Per track: sum over members of weight x (member score / the member's best score),
    damped by the version's popularity penalty when it has one."""
    known = [e for e in history if e.track_id in model.index]
    positives = sorted((e for e in known if e.value > 0 and not e.disliked),
                       key=lambda e: -e.value)[:MAX_HISTORY]
    if not positives:
        return Proposal(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64))
    blocked = {model.index[t] for t in exclude if t in model.index}
    total = np.zeros(len(model.manifest.track_ids), dtype=np.float64)
    because = np.full(len(total), -1)
    best_part = np.zeros(len(total))
    for member, weight in model.manifest.members.items():
        if member == ALS:
            scores = await _als_scores(models, model, known, len(blocked))
        else:
            scores, top_source, top_part = await _neighbour_scores(models, model, member,
                                                                   positives)
            better = top_part * weight > best_part
            because[better] = top_source[better]
            best_part[better] = top_part[better] * weight
        total += weight * normalised_top(scores, blocked, PER_MEMBER)
    if model.damping is not None and total.any():
        # The penalty reorders; the rescale keeps the signal's best where it was, so
        # R(x)'s weights mean what they meant without it.
        best = total.max()
        total /= model.damping
        total *= best / total.max()
    picked = np.flatnonzero(total > 0)
    return Proposal(picked, total[picked], because[picked])


async def _neighbour_scores(models: ModelStore, model: ServingModel, member: str,
                            positives: list[Engagement]) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray]:
    """x_u @ W from the stored rows, and for each item the history item giving most
    (the first such in the history's order)."""
    n = len(model.manifest.track_ids)
    order = [model.index[e.track_id] for e in positives]
    weights = np.array([evidence(member, e.value) for e in positives])
    scores, top_source, top_part = np.zeros(n), np.full(n, -1), np.zeros(n)
    arrays = models.arrays(model)
    if arrays is not None:
        rows = arrays.neighbours.get(member)
        if rows is None:
            return scores, top_source, top_part
        picked = rows[order]  # one CSR row gather instead of a read per item
        lengths = np.diff(picked.indptr)
        cols = picked.indices
        parts = picked.data.astype(np.float32).astype(np.float64) * np.repeat(weights, lengths)
        sources = np.repeat(order, lengths)
    else:
        model_rows = await models.item_rows(model, member, order)
        present = [(i, w) for i, w in zip(order, weights, strict=True) if i in model_rows]
        if not present:
            return scores, top_source, top_part
        cols = np.concatenate([model_rows[i][0] for i, _ in present])
        parts = np.concatenate([model_rows[i][1] * w for i, w in present])
        sources = np.repeat([i for i, _ in present],
                            [len(model_rows[i][0]) for i, _ in present])
    if not len(cols):
        return scores, top_source, top_part
    # bincount adds in array order: the same sums, bit for bit, as adding row by row.
    scores = np.bincount(cols, weights=parts, minlength=n).astype(np.float64)
    np.maximum.at(top_part, cols, parts)
    winners = np.flatnonzero((parts == top_part[cols]) & (parts > 0))
    columns, first = np.unique(cols[winners], return_index=True)
    top_source[columns] = sources[winners[first]]
    return scores, top_source, top_part


async def _als_scores(models: ModelStore, model: ServingModel, known: list[Engagement],
                      n_blocked: int) -> np.ndarray:
    manifest = model.manifest
    scores = np.zeros(len(manifest.track_ids))
    vector = await fold_in(models, model, known)
    if vector is None:
        return scores
    found = await models.nearest_items(model, vector, PER_MEMBER + n_blocked)
    if found:
        items, values = zip(*found, strict=True)
        scores[list(items)] = values
    return scores


async def fold_in(models: ModelStore, model: ServingModel,
                  history: list[Engagement]) -> np.ndarray | None:
    """The ALS user factor for these engagements against the stored item factors.

    The same least-squares step implicit's ALS takes for a user (Hu et al. 2008):
    (Y'Y + lambda I + sum_i (c_i - 1) y_i y_i') x = sum_{c_i > 0} c_i y_i,
    with c_i = alpha * |confidence| and preference 0 for negative evidence.
    """
    manifest = model.manifest
    if manifest.als_gram is None or not history:
        return None
    strongest = sorted(history, key=lambda e: -abs(e.value))[:MAX_HISTORY]
    items = [model.index[e.track_id] for e in strongest]
    arrays = models.arrays(model)
    if arrays is not None and arrays.item_factors is not None:
        y = arrays.item_factors[items].astype(np.float64)
        values = np.array([e.value for e in strongest])
    else:
        factors = await models.item_factors(model, items)
        found = [(factors[i], e.value) for i, e in zip(items, strongest, strict=True)
                 if i in factors]
        if not found:
            return None
        y = np.stack([f for f, _ in found]).astype(np.float64)
        values = np.array([v for _, v in found])
    c = manifest.als_alpha * np.asarray(confidence(values))
    b = (c[c > 0, None] * y[c > 0]).sum(axis=0)
    if not b.any():
        return None
    gram = np.asarray(manifest.als_gram)
    a = gram + manifest.als_regularization * np.eye(len(gram)) + (
        y.T * (np.abs(c) - 1.0)) @ y
    return np.linalg.solve(a, b).astype(np.float32)


def evidence(member: str, value: float) -> float:
    """What one engagement weighs in a neighbour model's scores: EASE is fitted on binary
    evidence, item-kNN on the log-scaled confidence."""
    return 1.0 if member == EASE else float(confidence(value))


def normalised_top(scores: np.ndarray, blocked: set[int], k: int) -> np.ndarray:
    """The k best positive scores divided by the best; zero elsewhere."""
    scores = scores.copy()
    if blocked:
        scores[list(blocked)] = 0.0
    out = np.zeros_like(scores)
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[scores[top] > 0]
    if len(top):
        out[top] = scores[top] / scores[top].max()
    return out
