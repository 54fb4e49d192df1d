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
    blocked = np.fromiter({model.index[t] for t in exclude if t in model.index}, np.int64)
    # The user's items (model indices) and engagement values, strongest first: every
    # neighbour member reads the same rows.
    order = np.fromiter((model.index[e.track_id] for e in positives), np.int64,
                        len(positives))
    strengths = np.fromiter((e.value for e in positives), np.float64, len(positives))
    total = np.zeros(len(model.manifest.track_ids), dtype=np.float64)
    evidences: list[tuple[_Evidence, float]] = []
    for member, weight in model.manifest.members.items():
        if member == ALS:
            scores = await _als_scores(models, model, known, len(blocked))
        else:
            found = await _neighbour_evidence(models, model, member, order, strengths)
            if found is None:
                continue
            evidences.append((found, weight))
            scores = np.bincount(found.cols, weights=found.parts, minlength=len(total))
        top, values = top_positive(scores, blocked, PER_MEMBER)
        total[top] += weight * values
    picked = np.flatnonzero(total > 0)
    scores = total[picked]
    if model.damping is not None and len(picked):
        # The penalty reorders; the rescale keeps the signal's best where it was, so
        # R(x)'s weights mean what they meant without it.
        best = scores.max()
        scores /= model.damping[picked]
        scores *= best / scores.max()
    return Proposal(picked, scores, _because(picked, evidences, len(total)))


@dataclass(frozen=True)
class _Evidence:
    """A neighbour member's entries for the user: per stored entry of the user's items'
    rows, the column, its weighted value and the history item it came from."""

    cols: np.ndarray
    parts: np.ndarray  # float64
    sources: np.ndarray


async def _neighbour_evidence(models: ModelStore, model: ServingModel, member: str,
                              order: np.ndarray, values: np.ndarray) -> _Evidence | None:
    """The member's rows of the user's items (`order`), weighted by the evidence of their
    engagement `values`. The scores are their sums per column (bincount adds in array
    order: the same sums, bit for bit, as adding row by row)."""
    weights = evidences_of(member, values)
    arrays = models.arrays(model)
    if arrays is not None:
        rows = arrays.neighbours.get(member)
        if rows is None:
            return None
        # One gather over the CSR arrays for all the rows (scipy's row indexing costs
        # more in its checks than the copy).
        starts = rows.indptr[order]
        lengths = rows.indptr[order + 1] - starts
        flat = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(
            lengths.sum())
        cols = rows.indices[flat]
        parts = rows.data[flat].astype(np.float32).astype(np.float64) * np.repeat(weights,
                                                                                  lengths)
        sources = np.repeat(order, lengths)
    else:
        model_rows = await models.item_rows(model, member, [int(i) for i in order])
        present = [(int(i), w) for i, w in zip(order, weights, strict=True)
                   if int(i) in model_rows]
        if not present:
            return None
        cols = np.concatenate([model_rows[i][0] for i, _ in present])
        parts = np.concatenate([model_rows[i][1] * w for i, w in present])
        sources = np.repeat([i for i, _ in present],
                            [len(model_rows[i][0]) for i, _ in present])
    return _Evidence(cols.astype(np.int64), parts, sources)


def _because(picked: np.ndarray, evidences: list[tuple[_Evidence, float]],
             n: int) -> np.ndarray:
    """Per picked item, the history item whose entry gives most (weighted by its
    member; the first such in the history's order, the earlier member on a tie); -1
    where no neighbour member has a positive entry (ALS alone proposed it)."""
    because = np.full(len(picked), -1)
    best = np.zeros(len(picked))
    slot = np.full(n, -1)
    slot[picked] = np.arange(len(picked))
    for found, weight in evidences:
        at = slot[found.cols]
        keep = np.flatnonzero((at >= 0) & (found.parts > 0))
        if not len(keep):
            continue
        at, parts = at[keep], found.parts[keep]
        top = np.zeros(len(picked))
        np.maximum.at(top, at, parts)
        winners = np.flatnonzero(parts == top[at])
        # np.unique's index is each slot's first occurrence: the earliest entry on a tie.
        slots, first = np.unique(at[winners], return_index=True)
        better = top[slots] * weight > best[slots]
        because[slots[better]] = found.sources[keep[winners[first[better]]]]
        best[slots[better]] = top[slots[better]] * weight
    return because


async def _als_scores(models: ModelStore, model: ServingModel, known: list[Engagement],
                      n_blocked: int) -> np.ndarray:
    """ALS scores of every item for the user folded in (from the store: of the nearest
    items only)."""
    manifest = model.manifest
    vector = await fold_in(models, model, known)
    if vector is None:
        return np.zeros(len(manifest.track_ids))
    arrays = models.arrays(model)
    if arrays is not None and arrays.item_factors is not None:
        # Every item's dot product is one 17k x k product; cutting to the top happens
        # once, in top_positive.
        full: np.ndarray = (arrays.item_factors @ vector).astype(np.float64)
        return full
    scores = np.zeros(len(manifest.track_ids))
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
    if model.als_system is None or not history:
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
    a = model.als_system + (y.T * (np.abs(c) - 1.0)) @ y
    return np.linalg.solve(a, b).astype(np.float32)


def evidence(member: str, value: float) -> float:
    """What one engagement weighs in a neighbour model's scores: EASE is fitted on binary
    evidence, item-kNN on the log-scaled confidence."""
    return 1.0 if member == EASE else float(confidence(value))


def evidences_of(member: str, values: np.ndarray) -> np.ndarray:
    """`evidence` of each engagement value (float64, the same numbers)."""
    return np.ones(len(values)) if member == EASE else np.asarray(confidence(values),
                                                                  dtype=np.float64)


def top_positive(scores: np.ndarray, blocked: np.ndarray,
                 k: int) -> tuple[np.ndarray, np.ndarray]:
    """The (at most) k best positive scores outside `blocked`, divided by the best, and
    their indices. Overwrites the blocked entries of `scores`."""
    scores[blocked] = 0.0
    top = np.flatnonzero(scores > 0)
    if len(top) > k:
        top = top[np.argpartition(-scores[top], k - 1)[:k]]
    values = scores[top]
    return top, values / values.max() if len(top) else values


def normalised_top(scores: np.ndarray, blocked: set[int], k: int) -> np.ndarray:
    """The k best positive scores divided by the best; zero elsewhere."""
    top, values = top_positive(scores.copy(), np.fromiter(blocked, np.int64), k)
    out = np.zeros_like(scores)
    out[top] = values
    return out
