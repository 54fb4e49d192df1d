"""Offline evaluation protocol: per-user random hold-out and top-N ranking metrics.

Protocol (documented in the README): every user with at least `min_items` items keeps a
random 80 % of them for training and holds out the rest (at least one), with a fixed seed.
Each test user's top N is ranked over the full catalog with their training items
excluded; relevance is binary (a held-out item).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Split:
    """Interactions split per user into training values and held-out items."""

    train: dict[str, dict[str, float]]  # user -> item -> value (e.g. play count)
    test: dict[str, set[str]]  # user -> held-out items


def split_per_user(interactions: Mapping[str, Mapping[str, float]], test_fraction: float = 0.2,
                   seed: int = 2011, min_items: int = 5) -> Split:
    """Holds out a random fraction of each user's items (users with min_items or more)."""
    rng = np.random.default_rng(seed)
    train: dict[str, dict[str, float]] = {}
    test: dict[str, set[str]] = {}
    for user in sorted(interactions):
        items = sorted(interactions[user])
        if len(items) < min_items:
            train[user] = dict(interactions[user])
            continue
        held = max(1, round(len(items) * test_fraction))
        order = rng.permutation(len(items))
        held_out = {items[i] for i in order[:held]}
        train[user] = {i: v for i, v in interactions[user].items() if i not in held_out}
        test[user] = held_out
    return Split(train, test)


@dataclass(frozen=True)
class Scores:
    """Top-N metrics averaged over the evaluated users, and catalog coverage."""

    precision: float
    recall: float
    ndcg: float
    map: float
    coverage: float
    users: int

    def row(self) -> dict[str, float]:
        """The scores as a table row, by column name."""
        return {"P@10": self.precision, "R@10": self.recall, "nDCG@10": self.ndcg,
                "MAP@10": self.map, "coverage": self.coverage}


def evaluate(ranked: Mapping[str, Sequence[str]], test: Mapping[str, set[str]],
             catalog_size: int, k: int = 10) -> Scores:
    """Means over the test users (a user missing from `ranked` scores zero)."""
    p, r, n, m = [], [], [], []
    shown: set[str] = set()
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    for user, relevant in test.items():
        top = list(ranked.get(user, ()))[:k]
        shown.update(top)
        hits = np.array([item in relevant for item in top] + [False] * (k - len(top)))
        p.append(hits.sum() / k)
        r.append(hits.sum() / len(relevant))
        ideal = discounts[:min(len(relevant), k)].sum()
        n.append(float((hits * discounts).sum() / ideal))
        precision_at = np.cumsum(hits) / np.arange(1, k + 1)
        m.append(float((precision_at * hits).sum() / min(len(relevant), k)))
    return Scores(float(np.mean(p)), float(np.mean(r)), float(np.mean(n)), float(np.mean(m)),
                  len(shown) / catalog_size, len(test))


def top_n(scores: np.ndarray, exclude: Iterable[int], n: int) -> list[int]:
    """Indices of the n highest scores, skipping `exclude`."""
    scores = scores.astype(np.float64, copy=True)
    for i in exclude:
        scores[i] = -np.inf
    n = min(n, len(scores))
    best = np.argpartition(-scores, n - 1)[:n]
    best = best[np.argsort(-scores[best], kind="stable")]
    return [int(i) for i in best if np.isfinite(scores[i])]
